"""Benchmarks: `python tools/bench.py <name>` prints a table and updates its section of BENCHMARKS.md.

    python tools/bench.py retrieval [--vs-open-clip] [--skip-quality]
    python tools/bench.py serving [--requests 200] [--seconds 20]
    python tools/bench.py scaling [--epochs 8]
    python tools/bench.py classify [--classify-epochs 6] [--pretrain-epochs 5]
    python tools/bench.py vqa [--skip-quality] [--skip-fusions] [--seeds 0 1 2] [--fusion-epochs 6]
    python tools/bench.py caption [--caption-epochs N]
    python tools/bench.py generate [--generate-prompts 200]

Numbers are medians over timed steps after warm-up, measured side by side in one run.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tfmm  # noqa: E402,F401
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

BENCHMARKS = ROOT / "BENCHMARKS.md"
OPEN_CLIP_VENV = ROOT / "tools" / ".venv-openclip"


def machine():
    cpu = "unknown CPU"
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"


def update_section(name, body, command):
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = (f"{start}\n## {name}\n\nCommand: `{command}`  \nMachine: {machine()}  \n"
               f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{body.strip()}\n{end}")
    text = BENCHMARKS.read_text() if BENCHMARKS.is_file() else "# Benchmarks\n\nWritten by `tools/bench.py`; each section says how it was measured.\n"
    if start in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS.write_text(text)
    print(f"updated {BENCHMARKS} [{name}]")


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def time_fit(model, dataset, steps, warmup):
    """Per-step seconds of `model.fit` after `warmup` steps (compilation and first fills excluded)."""
    timer = StepTimer()
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], verbose=0)
    return timer.times[warmup:]


# ------------------------------------------------------------------------------------------ retrieval


def tiny_clip(mixed):
    """The peer-comparison CLIP: ViT 64px/8, width 256, 4 layers, 4 heads; text ctx 32, vocab 2048, width 256."""
    import keras_hub

    from tfmm.encoders import TransformerTextEncoder, ViTImageEncoder
    from tfmm.models import CLIPBackbone, ContrastiveRetriever
    from tfmm.train import set_precision

    set_precision(mixed)
    vit = keras_hub.models.ViTBackbone(image_shape=(64, 64, 3), patch_size=8, num_layers=4, num_heads=4, hidden_dim=256, mlp_dim=1024)
    text = TransformerTextEncoder(2048, 32, hidden_dim=256, num_layers=4, num_heads=4, intermediate_dim=1024)
    return ContrastiveRetriever(CLIPBackbone(ViTImageEncoder(vit), text, embedding_dim=256))


def random_batches(batch, seed=0):
    rng = np.random.default_rng(seed)
    data = {"images": rng.random((batch, 64, 64, 3), dtype=np.float32),
            "token_ids": rng.integers(1, 2048, (batch, 32)).astype("int32"), "padding_mask": np.ones((batch, 32), "int32")}
    return tf.data.Dataset.from_tensors(data).repeat()


def throughput_tfmm(steps, warmup, batch=128):
    results = {}
    for name, mixed, jit in [("float32", False, False), ("float32 + XLA", False, True),
                             ("mixed_bfloat16", True, False), ("mixed_bfloat16 + XLA", True, True)]:
        keras.backend.clear_session()
        model = tiny_clip(mixed)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.05), jit_compile=jit)
        times = time_fit(model, random_batches(batch), steps, warmup)
        results[name] = batch / statistics.median(times)
        print(f"  tfmm {name}: {results[name]:.1f} images/s")
    keras.mixed_precision.set_global_policy("float32")
    return results


def throughput_open_clip(steps, warmup, batch=128):
    python = OPEN_CLIP_VENV / "bin" / "python"
    if not python.exists():
        print(f"  creating {OPEN_CLIP_VENV} (torch + open_clip, never a dependency of tfmm)")
        subprocess.run([sys.executable, "-m", "venv", str(OPEN_CLIP_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.14.1", "torchvision==0.29.1", "open_clip_torch"], check=True)
    out = subprocess.run([str(python), str(ROOT / "tools" / "openclip_bench.py"), str(steps), str(warmup), str(batch),
                          str(os.cpu_count())], check=True, capture_output=True, text=True).stdout
    times = json.loads(out.strip().splitlines()[-1])
    results = {f"open_clip {mode}": batch / statistics.median(t) for mode, t in times.items()}
    for name, value in results.items():
        print(f"  {name}: {value:.1f} images/s")
    return results


def input_wait_share(config, steps, warmup):
    """Share of a training step spent waiting on input: real pipeline vs the same batches preloaded."""
    from tfmm.apps import retrieval
    from tfmm.data import ImageCheck
    from tfmm.train import make_optimizer

    train_examples = retrieval.examples(config, "train", ImageCheck())
    preprocessor = retrieval.build_preprocessor(config, train_examples)
    real = retrieval.pipeline(config, train_examples, preprocessor, training=True).repeat()
    preloaded = tf.data.Dataset.from_tensors(next(iter(real))).repeat()
    timings = {}
    for name, dataset in (("preloaded", preloaded), ("pipeline", real)):
        keras.backend.clear_session()
        model = retrieval.build_model(config, preprocessor.vocabulary_size)
        model.compile(optimizer=make_optimizer(config.train, 1000))
        timings[name] = statistics.median(time_fit(model, dataset, steps, warmup))
    return timings, max(0.0, 1 - timings["preloaded"] / timings["pipeline"])


def tflite_latency(path, inputs, runs=200):
    from tfmm.export.tflite import interpreter

    runner = interpreter(path).get_signature_runner("serving_default")
    for _ in range(10):
        runner(**inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(**inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def dir_size(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def bench_retrieval(args):
    from tfmm.apps import retrieval
    from tfmm.config import load_config
    from tfmm.data import ImageCheck

    sections = []
    config = load_config(retrieval.RetrievalConfig, ROOT / "apps" / "retrieval.toml")
    with tempfile.TemporaryDirectory() as scratch:
        config.train.output_dir = str(Path(scratch) / "runs")
        config.export.base_dir = str(Path(scratch) / "saved_models")

        print("input pipeline: default config, real pipeline vs preloaded batches")
        timings, wait = input_wait_share(config, args.steps, args.warmup)
        batch = config.data.batch_size
        sections.append("### Default config: training throughput and input wait\n\n" + table(
            ["pipeline", "median step (ms)", "images/s"],
            [[k, f"{v * 1000:.0f}", f"{batch / v:.0f}"] for k, v in timings.items()],
        ) + f"\n\nShare of step time waiting on input: **{wait:.1%}** (1 − preloaded / pipeline step time).")

        if not args.skip_quality:
            print("quality: the README's main job (default config, built-in shapes)")
            keras.backend.clear_session()
            started = time.time()
            run = retrieval.train(config)
            train_seconds = time.time() - started
            check = ImageCheck()
            test = retrieval.evaluate(run, "test", check)
            zero = retrieval.zero_shot(run, "heldout", check)
            version = retrieval.export(run)
            rows = [[k, f"{v:.3f}"] for k, v in test.items() if "recall" in k]
            rows += [[f"zero-shot held-out {k}", f"{v:.3f}"] for k, v in zero.items() if "accuracy" in k]
            rows.append(["training time (s)", f"{train_seconds:.0f}"])
            sections.append("### Default config trained on shapes (test split: 1,000 images, 5 captions each)\n\n"
                            + table(["metric", "value"], rows))
            parity = json.loads((version / "tflite" / "parity.json").read_text())
            images = np.random.default_rng(0).random((1, config.data.image_size, config.data.image_size, 3), dtype=np.float32)
            tokens = run.preprocessor.tokenize_numpy(["a small red circle left of a large blue star"])
            rows = [["SavedModel (whole version dir incl. TFLite)", f"{dir_size(version) / 1e6:.2f} MB", "", ""]]
            for name, info in parity.items():
                inputs = {"images": images} if name.startswith("image") else tokens
                rows.append([name, f"{info['bytes'] / 1e6:.2f} MB", f"{info['min_cosine']:.4f}",
                             f"{tflite_latency(version / 'tflite' / name, inputs):.3f}"])
            sections.append("### Export sizes, TFLite parity and latency (batch 1, ai_edge_litert, 2 threads default)\n\n"
                            + table(["file", "size", "min cosine vs Keras", "median latency (ms)"], rows))

    if args.vs_open_clip:
        print("peer comparison: the same tiny CLIP in tfmm and in open_clip, random batches of 128")
        ours = throughput_tfmm(args.steps, args.warmup)
        theirs = throughput_open_clip(args.steps, args.warmup)
        best_ours, best_theirs = max(ours.values()), max(theirs.values())
        rows = [[f"tfmm {k}", f"{v:.1f}"] for k, v in ours.items()] + [[k, f"{v:.1f}"] for k, v in theirs.items()]
        sections.append(
            "### Peer comparison: tiny CLIP training throughput, tfmm vs open_clip (same run)\n\n"
            "ViT 64×64 patch 8, width 256, 4 layers, 4 heads; text context 32, vocabulary 2048, width 256, "
            "4 layers, 4 heads; embedding 256; batch 128; AdamW; random batches; "
            f"median over {args.steps} steps after {args.warmup} warm-up steps.\n\n"
            + table(["framework and precision", "images/s"], rows)
            + f"\n\nBest tfmm / best open_clip: **{best_ours / best_theirs:.2f}×** (target ≥ 1.2×)."
        )
    command = "python tools/bench.py retrieval" + (" --vs-open-clip" if args.vs_open_clip else "") + (
        " --skip-quality" if args.skip_quality else "")
    body = "\n\n".join(sections)
    print(body)
    update_section("retrieval", body, command)


# -------------------------------------------------------------------------------------------- serving


def _start_server(model_root, batching_file=None):
    import socket

    def free_port():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    grpc_port, rest_port = free_port(), free_port()
    config = Path(model_root) / "bench_models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{p.name}" base_path: "{p}" model_platform: "tensorflow" }}\n'
        for p in sorted(Path(model_root).iterdir()) if p.is_dir()) + "}\n")
    command = [sys.executable, "-m", "tfmm.serving", f"--model_config_file={config}", f"--port={grpc_port}",
               f"--rest_api_port={rest_port}", "--file_system_poll_wait_seconds=0"]
    if batching_file:
        command += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{rest_port}/healthz", timeout=1).status_code == 200:
                return process, grpc_port, rest_port
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("server did not start")


def _load(send, clients, requests_per_client, seconds):
    """Runs `clients` threads, each sending up to `requests_per_client` requests (bounded by `seconds`)."""
    import threading

    latencies, errors, lock = [], [0], threading.Lock()
    stop_at = time.time() + seconds

    def worker(index):
        for _ in range(requests_per_client):
            if time.time() > stop_at:
                break
            start = time.perf_counter()
            try:
                send()
                with lock:
                    latencies.append(time.perf_counter() - start)
            except Exception:
                with lock:
                    errors[0] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(int(q * len(latencies)), len(latencies) - 1)] * 1000 if latencies else float("nan")  # noqa: E731
    return {"requests": len(latencies), "throughput": len(latencies) / elapsed, "p50": pick(0.5), "p99": pick(0.99), "errors": errors[0]}


def bench_serving(args):
    import base64
    import io
    import shutil

    import grpc
    import httpx
    import tensorflow_text  # noqa: F401  (the export tokenises in-graph)
    from PIL import Image
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tfmm.data.shapes import generate_example
    from tfmm.export import latest_version_dir

    source = latest_version_dir(ROOT / "saved_models" / "retrieval")  # run the README's main job first
    buffer = io.BytesIO()
    Image.fromarray(generate_example(0, "test", 0)["image"]).save(buffer, "PNG")
    png = buffer.getvalue()
    rest_body = {"instances": [{"b64": base64.b64encode(png).decode()}]}
    models = ("retrieval", "retrieval_vit_base")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "models"
        shutil.copytree(source, root / "retrieval" / "1")
        # A compute-bound model beside it: the same app with a ViT-base image tower (untrained; speed only).
        shutil.copytree(_heavy_retrieval_export(Path(scratch)), root / "retrieval_vit_base" / "1")
        batching = Path(scratch) / "batching.txt"
        batching.write_text("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 2000 }\n"
                            "max_enqueued_batches { value: 1000 }\nnum_batch_threads { value: 2 }\n")
        direct_p50 = _direct_p50(root / "retrieval" / "1", png)

        rows, overhead, throughput = [], {}, {}
        for batching_on in (False, True):
            process, grpc_port, rest_port = _start_server(root, batching if batching_on else None)
            try:
                http = httpx.Client(base_url=f"http://127.0.0.1:{rest_port}", timeout=60,
                                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
                channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                for model_name in models:
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = model_name
                    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([png], dtype=tf.string))

                    def send_rest(model_name=model_name):
                        response = http.post(f"/v1/models/{model_name}:predict", json=rest_body)
                        if response.status_code != 200:
                            raise RuntimeError(response.text)

                    def send_grpc(request=request):
                        stub.Predict(request, timeout=60)

                    for api, send in (("REST", send_rest), ("gRPC", send_grpc)):
                        _load(send, 1, 20, 30)  # warm-up
                        for clients in (1, 8, 32):
                            result = _load(send, clients, args.requests, args.seconds)
                            rows.append([model_name, api, "on" if batching_on else "off", clients, result["requests"],
                                         f"{result['throughput']:.0f}", f"{result['p50']:.2f}", f"{result['p99']:.2f}", result["errors"]])
                            if clients == 1 and not batching_on and model_name == "retrieval":
                                overhead[api] = result["p50"] - direct_p50
                            if clients == 32:
                                throughput[(model_name, api, batching_on)] = result["throughput"]
                            print(f"  {model_name} {api} batching={'on' if batching_on else 'off'} clients={clients}: {result}")
                channel.close()
                http.close()
            finally:
                process.terminate()
                process.wait(timeout=30)
    gains = {(m, api): throughput[(m, api, True)] / throughput[(m, api, False)] for m in models for api in ("REST", "gRPC")}
    body = (
        "Models: the retrieval export's `serving_default` (one 64×64 PNG → embedding; small CNN, about 2 ms a call) and "
        "`retrieval_vit_base`, the same app with a ViT-base image tower (patch 16, 12 layers, width 768; compute-bound; "
        "untrained, speed only). Server in its own process; clients are threads of the benchmark process on the same "
        f"2 cores, so they compete with the server. Each client sends up to {args.requests} requests, at most "
        f"{args.seconds:.0f} s per cell. Batching: max_batch_size 32, batch_timeout_micros 2000, 2 batch threads.\n\n"
        + table(["model", "API", "batching", "clients", "requests", "requests/s", "p50 (ms)", "p99 (ms)", "errors"], rows)
        + f"\n\nIn-process SavedModel call (retrieval), p50: {direct_p50:.2f} ms. Server overhead at p50 for one client "
        f"(server p50 − direct p50): REST {overhead['REST']:.2f} ms, gRPC {overhead['gRPC']:.2f} ms (target ≤ 2 ms).  \n"
        "Throughput at 32 clients, batching on / off: "
        + ", ".join(f"{m} {api} {g:.2f}×" for (m, api), g in gains.items()) + " (target ≥ 2×)."
    )
    print(body)
    update_section("serving", body, f"python tools/bench.py serving --requests {args.requests} --seconds {args.seconds:.0f}")


def _direct_p50(path, png, runs=200):
    """The in-process SavedModel call: the baseline for the server's overhead."""
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    images = tf.constant([png])
    for _ in range(20):
        signature(image_bytes=images)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        signature(image_bytes=images)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _heavy_retrieval_export(scratch):
    from tfmm.apps import retrieval
    from tfmm.config import load_config

    overrides = ["data.shapes_config=tiny", "model.image_encoder=vit", "model.image_encoder_size=base", "train.epochs=1",
                 "train.steps_per_epoch=1", "data.batch_size=8", "export.tflite=false",
                 f"train.output_dir={scratch / 'runs'}", f"export.base_dir={scratch / 'exports'}"]
    run = retrieval.train(load_config(retrieval.RetrievalConfig, None, overrides))
    return retrieval.export(run)


# -------------------------------------------------------------------------------------------- scaling

MIRRORED_LOGICAL_CPUS = r"""
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfmm.apps import retrieval
raise SystemExit(retrieval.main(sys.argv[1:]))
"""


def bench_scaling(args):
    """The same training with 1 process, 2 local workers (MultiWorkerMirrored) and Mirrored over 2 logical CPUs."""
    import re

    app = ["-m", "tfmm.apps.retrieval"]
    with tempfile.TemporaryDirectory() as scratch:
        common = ["train", "--set", "data.shapes_config=small", "--set", f"train.epochs={args.epochs}",
                  "--set", "export.tflite=false", "--set", f"train.output_dir={scratch}"]
        setups = [
            ("1 process, default strategy", [sys.executable, *app]),
            ("2 workers, MultiWorkerMirroredStrategy (tfmm.launch)", [sys.executable, "-m", "tfmm.launch", "--workers", "2", "--",
                                                                     sys.executable, *app]),
            ("1 process, MirroredStrategy over 2 logical CPUs", [sys.executable, "-c", MIRRORED_LOGICAL_CPUS]),
        ]
        rows = []
        for index, (name, command) in enumerate(setups):
            extra = ["--strategy", "mirrored"] if "logical" in name else []
            run_dir = Path(scratch) / f"run{index}"
            started = time.time()
            result = subprocess.run([*command, *common, *extra, "--run-dir", str(run_dir)], capture_output=True, text=True)
            wall = time.time() - started
            if result.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            out = result.stdout
            trained = float(re.search(r"trained in (\d+) s", out).group(1))
            steps, epochs = map(int, re.search(r"(\d+) steps × (\d+) epochs", out).groups())
            recall = float(re.search(r"text_to_image_recall@1\s+([0-9.]+)", out).group(1))
            examples = 2000 // 128 * 128 * epochs
            rows.append([name, steps, f"{trained:.0f}", f"{examples / trained:.0f}", f"{recall:.3f}", f"{wall:.0f}"])
            print("  ", rows[-1])
    body = (
        f"Default retrieval config on `tfmm_shapes/small` (2,000 training scenes), global batch 128, {args.epochs} epochs, "
        "the same seed; the validation text→image Recall@1 (200 images) reached at the end stands in for time to a fixed accuracy.\n\n"
        + table(["setup", "steps/epoch per worker", "training (s)", "images/s", "val text→image R@1", "wall incl. start-up (s)"], rows)
        + "\n\nReading: this machine has 2 cores, so two workers or two logical devices split the same two cores; the "
        "table measures the overhead of the distributed paths (collectives over loopback gRPC, replica synchronisation), "
        "not a speed-up. On real hardware each worker brings its own cores or GPUs; see the README's \"Scaling out\"."
    )
    print(body)
    update_section("scaling", body, f"python tools/bench.py scaling --epochs {args.epochs}")


# ------------------------------------------------------------------------------------------------ vqa


def _vqa_config(**overrides):
    from tfmm.apps import vqa
    from tfmm.config import load_config

    return load_config(vqa.VQAConfig, ROOT / "apps" / "vqa.toml", [f"{k}={v}" for k, v in overrides.items()])


def _tflite_accuracy(path, run, dataset, limit):
    """Accuracy and median latency of a `.tflite` answerer, one question at a time, on `limit` questions."""
    from tfmm.export.tflite import interpreter

    runner = interpreter(path).get_signature_runner("serving_default")
    correct = total = 0
    times = []
    for group in dataset.as_numpy_iterator():
        image = group["image"][None].astype(np.float32) / 255.0
        questions = [q.decode() for q in group["questions"]]
        tokens = run.preprocessor.tokenize_numpy(questions)
        for index, answer in enumerate(group["answers"]):
            start = time.perf_counter()
            out = runner(images=image, token_ids=tokens["token_ids"][index][None, None],
                         padding_mask=tokens["padding_mask"][index][None, None])
            times.append(time.perf_counter() - start)
            correct += run.answers[int(out["probabilities"].argmax())] == answer.decode()
            total += 1
        if total >= limit:
            break
    return correct / total, statistics.median(times) * 1000


def _train_and_score(config, fresh_dir=None):
    from tfmm.apps import vqa
    from tfmm.data import ImageCheck

    keras.backend.clear_session()
    started = time.time()
    run = vqa.train(config)
    seconds = time.time() - started
    test = vqa.evaluate(run, vqa.groups(config, "test", ImageCheck()))
    fresh = vqa.evaluate(run, vqa.eval_groups(run, directory=fresh_dir)) if fresh_dir else None
    return run, seconds, test, fresh


def _training_questions(config):
    from tfmm.apps import vqa
    from tfmm.data import ImageCheck

    return len(vqa.training_text(vqa.groups(config, "train", ImageCheck()))[0])


def _pipeline_speed(steps, warmup):
    """Grouped (one image encoding per image, all its questions) vs one (image, question) pair per example."""
    from tfmm.apps import vqa
    from tfmm.data import ImageCheck

    rows = []
    grouped = _vqa_config()
    pairs_batch = 8 * grouped.data.batch_size  # about as many questions per step as the grouped batches carry
    for name, config in [("grouped", grouped),
                         ("pairs", _vqa_config(**{"data.group_questions": "false", "data.batch_size": pairs_batch}))]:
        keras.backend.clear_session()
        train_groups = vqa.groups(config, "train", ImageCheck())
        questions, answers = vqa.training_text(train_groups)
        preprocessor = vqa.build_preprocessor(config, questions)
        vocabulary = vqa.answer_vocabulary(answers)
        dataset = vqa.pipeline(config, train_groups, preprocessor, vocabulary, training=True, repeat=True)
        per_step = [float(w.numpy().sum()) for _, _, w in dataset.take(warmup + steps)][warmup:]
        images_per_step = config.data.batch_size
        model = vqa.build_model(config, preprocessor.vocabulary_size, vocabulary)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3))
        step = statistics.median(time_fit(model, dataset, steps, warmup))
        questions_per_step = statistics.mean(per_step)
        rows.append([name, config.data.batch_size, f"{questions_per_step:.0f}", images_per_step, f"{step * 1000:.0f}",
                     f"{questions_per_step / step:.0f}", f"{images_per_step / questions_per_step:.2f}"])
    return rows


def bench_vqa(args):
    from tfmm.data import ImageCheck, easy_vqa
    from tfmm.layers import FUSIONS
    from tfmm.apps import vqa

    sections = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        fresh_dir = easy_vqa.generate(scratch / "fresh", 1000, seed=2026)
        common = {"train.output_dir": f'"{scratch / "runs"}"', "export.base_dir": f'"{scratch / "saved_models"}"'}

        print("pipeline: grouped questions vs one pair per example")
        rows = _pipeline_speed(args.steps, args.warmup)
        sections.append(
            "### Input layout: one image encoding per image vs per question (default model, easy-VQA train)\n\n"
            + table(["layout", "batch", "questions/step", "images encoded/step", "median step (ms)", "questions/s",
                     "image encodings per question"], rows))

        if not args.skip_quality:
            rows = []
            for seed in args.seeds:
                print(f"default config, seed {seed}")
                config = _vqa_config(**common, **{"train.seed": seed})
                run, seconds, test, fresh = _train_and_score(config, fresh_dir)
                rows.append([seed, f"{seconds / 60:.1f}", f"{test['accuracy']:.4f}", test["errors"],
                             f"{test['accuracy_colour']:.4f}", f"{test['accuracy_shape']:.4f}",
                             f"{test['accuracy_yes_no']:.4f}", f"{fresh['accuracy']:.4f}", test["top_confusions"]])
            sections.append(
                f"### Default config on the official easy-VQA split ({', '.join(map(str, args.seeds))} as seeds)\n\n"
                "Trained on the official train split only (10% of its images held out for validation), "
                "evaluated on all 9,673 official test questions and on 1,000 freshly generated easy-VQA-style images. "
                "Target: ≥ 0.995 on the test split within 13 minutes, every seed.\n\n"
                + table(["seed", "train (min)", "test accuracy", "errors", "colour", "shape", "yes/no",
                         "fresh data accuracy", "top confusions"], rows))

        if not args.skip_quality:
            print("video clips")
            config = _vqa_config(**common, **{"data.source": "clips", "train.epochs": args.clip_epochs})
            run, seconds, test, _ = _train_and_score(config)
            kinds = [k for k in ("colour", "shape", "direction", "yes_no") if f"accuracy_{k}" in test]
            sections.append(
                f"### Video QA on the built-in clips (default size: 3,000 training clips of 6 frames at 64×64, "
                f"{args.clip_epochs} epochs, default model + question-conditioned frame attention)\n\n"
                + table(["train (s)", "test accuracy"] + kinds + ["top confusions"],
                        [[f"{seconds:.0f}", f"{test['accuracy']:.4f}"] + [f"{test['accuracy_' + k]:.4f}" for k in kinds]
                         + [test["top_confusions"]]]))

        if not args.skip_fusions:
            rows = []
            for fusion in FUSIONS.names():
                print(f"fusion {fusion}")
                config = _vqa_config(**common, **{"model.fusion": fusion, "train.epochs": args.fusion_epochs})
                run, seconds, test, _ = _train_and_score(config)
                version = vqa.export(run)
                int8, latency = _tflite_accuracy(version / "tflite" / "answerer_int8.tflite", run,
                                                 vqa.groups(config, "test", ImageCheck()), args.tflite_questions)
                questions = config.train.epochs * _training_questions(config)
                rows.append([fusion, f"{test['accuracy']:.4f}", f"{test['accuracy_colour']:.4f}",
                             f"{test['accuracy_shape']:.4f}", f"{test['accuracy_yes_no']:.4f}",
                             f"{run.model.count_params():,}", f"{seconds:.0f}", f"{questions / seconds:.0f}",
                             f"{int8:.4f}", f"{latency:.2f}"])
            sections.append(
                f"### Fusion strategies on the same budget ({args.fusion_epochs} epochs, default encoders, easy-VQA)\n\n"
                f"TFLite int8 columns: the exported `answerer_int8.tflite` in ai_edge_litert, one question at a time, "
                f"on the first {args.tflite_questions} test questions.\n\n"
                + table(["fusion", "test accuracy", "colour", "shape", "yes/no", "parameters", "train (s)",
                         "questions/s", "TFLite int8 accuracy", "TFLite int8 ms"], rows))
    body = "\n\n".join(sections)
    print(body)
    command = "python tools/bench.py vqa" + (" --skip-quality" if args.skip_quality else "") + (
        " --skip-fusions" if args.skip_fusions else "")
    update_section("vqa", body, command)


# ------------------------------------------------------------------------------------------- classify


def _classify_config(**overrides):
    from tfmm.apps import classify
    from tfmm.config import load_config

    return load_config(classify.ClassifyConfig, ROOT / "apps" / "classify.toml", [f"{k}={v}" for k, v in overrides.items()])


def _ms_per_example(run, batch=64, repeats=20):
    size, length = run.model.image_size, run.model.sequence_length
    inputs = {"images": tf.random.uniform((batch, size, size, 3)), "token_ids": tf.ones((batch, length), tf.int32),
              "padding_mask": tf.ones((batch, length), tf.int32)}
    run.forward(inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run.forward(inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / batch


def _classify_row(name, config):
    from tfmm.apps import classify

    keras.backend.clear_session()
    print(f"classify: {name}")
    started = time.time()
    run = classify.train(config)
    seconds = time.time() - started
    scores = {missing: classify.evaluate(run, "test", missing)["finding"] for missing in classify.MISSING}
    return run, [name, f"{scores['none']['accuracy']:.3f}", f"{scores['none']['macro_f1']:.3f}",
                 f"{scores['text']['accuracy']:.3f}", f"{scores['image']['accuracy']:.3f}",
                 f"{run.model.count_params():,}", f"{seconds:.0f}", f"{_ms_per_example(run):.2f}"]


def bench_classify(args):
    from tfmm.apps import retrieval
    from tfmm.config import load_config
    from tfmm.layers import FUSIONS

    header = ["model", "accuracy (both)", "macro-F1 (both)", "accuracy, text missing", "accuracy, image missing",
              "parameters", "train (s)", "ms/example (batch 64)"]
    sections = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        common = {"train.output_dir": f'"{scratch / "runs"}"', "export.base_dir": f'"{scratch / "saved_models"}"',
                  "train.epochs": args.classify_epochs}
        rows, accuracy = [], {}
        for modalities in ("image", "text"):
            _, row = _classify_row(f"{modalities} only", _classify_config(**common, **{"model.modalities": modalities}))
            rows.append(row)
            accuracy[f"{modalities} only"] = float(row[1])
        for fusion in FUSIONS.names():
            _, row = _classify_row(f"fusion {fusion}", _classify_config(**common, **{"model.fusion": fusion}))
            rows.append(row)
            accuracy[f"fusion {fusion}"] = float(row[1])
        best_single = max(accuracy["image only"], accuracy["text only"])
        best_fusion = max(v for k, v in accuracy.items() if k.startswith("fusion"))
        sections.append(
            f"### Fusion strategies on `shapes_reports` (main label `finding`, {args.classify_epochs} epochs each, "
            "multi-task with `shape` and `colour`, test split of 1,000)\n\n"
            "\"text missing\" / \"image missing\": the same trained model evaluated with that modality removed "
            "(empty text / black image). The baselines are the same encoders with one modality and no fusion.\n\n"
            + table(header, rows)
            + f"\n\nBest fusion {best_fusion:.3f} vs best single modality {best_single:.3f}: "
              f"**{100 * (best_fusion - best_single):+.1f} points** (target ≥ +10).")

        rows = []
        for name, overrides in [("single-task (finding only)", {"data.label_columns": '["finding"]'}),
                                ("multi-task, static weights", {}),
                                ("multi-task, uncertainty weights", {"model.loss_weighting": "uncertainty"}),
                                ("multi-task + modality dropout 0.3", {"data.modality_dropout": 0.3})]:
            rows.append(_classify_row(name, _classify_config(**common, **overrides))[1])
        sections.append("### Multi-task vs single-task, and modality dropout (default fusion)\n\n" + table(header, rows))

        print("retrieval pretraining for the transfer rows")
        keras.backend.clear_session()
        pretrain = load_config(retrieval.RetrievalConfig, ROOT / "apps" / "retrieval.toml",
                               [f"train.epochs={args.pretrain_epochs}", f'train.output_dir="{scratch / "runs"}"'])
        presets = retrieval.save_presets(retrieval.train(pretrain), scratch / "presets")
        rows = []
        image_preset = f'"{presets / "image_encoder"}"'
        for name, overrides in [("from scratch", {}),
                                ("pretrained image encoder, frozen", {"model.image_encoder_weights": image_preset,
                                                                      "model.image_encoder_trainable": "frozen"}),
                                ("pretrained image encoder, full (lr × 0.1)", {"model.image_encoder_weights": image_preset})]:
            rows.append(_classify_row(name, _classify_config(**common, **overrides))[1])
        sections.append(
            f"### Transfer: image encoder pretrained by the retrieval app ({args.pretrain_epochs} epochs on shapes "
            "captions, `retrieval save-presets`), frozen vs fine-tuned\n\n" + table(header, rows))
    body = "\n\n".join(sections)
    print(body)
    update_section("classify", body, f"python tools/bench.py classify --classify-epochs {args.classify_epochs}")


def _captions_per_second(function, images, batch=64, repeats=3):
    """Median over `repeats` timed passes over `images` (after one warm-up batch): captions per second."""
    function(images[:batch])
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(images), batch):
            function(images[start:start + batch])
        rates.append(len(images) / (time.perf_counter() - started))
    return statistics.median(rates)


def bench_caption(args):
    """Both decoders on one budget: quality by decoding method, and captions per second in Keras,
    the SavedModel and the TFLite on-device loop."""
    from tfmm.apps import caption
    from tfmm.data import ImageCheck
    from tfmm.export.caption_on_device import OnDeviceCaptioner

    quality, speed = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for decoder in ("gru_attention", "transformer"):
            config = caption.CaptionConfig()
            config.model.decoder = decoder
            if args.caption_epochs:
                config.train.epochs = args.caption_epochs
            config.train.output_dir = str(Path(scratch) / "runs")
            config.export.base_dir = str(Path(scratch) / "saved_models")
            config.export.tflite_quantization = ["float32"]
            started = time.time()
            run = caption.train(config)
            minutes = (time.time() - started) / 60
            test = caption.examples(config, "test", ImageCheck())
            for width in (1, 3, 5):
                m = caption.evaluate(run, test, beam_width=width)
                quality.append([decoder, f"{minutes:.1f}", "greedy" if width == 1 else f"beam {width}",
                                f"{m['bleu_4']:.4f}", f"{m.get('meteor', float('nan')):.4f}", f"{m['cider_d']:.3f}",
                                f"{m['object_correctness']:.3f}"])
                print(quality[-1], m["top_object_mistakes"])
            images = np.stack([e["image"] for e in test.take(256).as_numpy_iterator()]).astype(np.float32) / 255.0
            exported = caption.export(run, name=f"caption_{decoder}")
            served = tf.saved_model.load(str(exported))
            png = np.array([tf.io.encode_png(tf.constant((image * 255).round().astype(np.uint8))).numpy() for image in images],
                           dtype=object)
            on_device = OnDeviceCaptioner(exported / "tflite", "float32")
            row = [decoder]
            for width in (1, 3):
                row.append(f"{_captions_per_second(lambda x: run.caption(x, beam_width=width), images):.0f}")
                row.append(f"{_captions_per_second(lambda x: served.signatures['caption_beam'](image_bytes=tf.constant(x), beam_width=tf.constant(width)), png):.0f}")
                row.append(f"{_captions_per_second(lambda x: [on_device.caption(i, beam_width=width) for i in x], images[:64], batch=16, repeats=1):.1f}")
            speed.append(row)
            print(row)
    body = table(["decoder", "train min", "decoding", "BLEU-4", "METEOR", "CIDEr-D", "object correctness"], quality)
    body += "\n\nCaptions per second (test images; Keras and SavedModel in batches of 64, TFLite one image at a time):\n\n"
    body += table(["decoder", "Keras greedy", "SavedModel greedy", "TFLite greedy", "Keras beam 3", "SavedModel beam 3",
                   "TFLite beam 3"], speed)
    update_section("caption", body, "python tools/bench.py caption" + (f" --caption-epochs {args.caption_epochs}" if args.caption_epochs else ""))


def _seconds_per_image(function, count, repeats=3):
    function()  # warm-up (tracing)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) / count)
    return statistics.median(times)


def bench_generate(args):
    """Both stages on shapes with the default config: reconstruction, fidelity, sampling speed."""
    import dataclasses

    from tfmm.apps import generate

    with tempfile.TemporaryDirectory() as scratch:
        config = generate.GenerateConfig()
        config.train.output_dir = str(Path(scratch) / "runs")
        config.export.base_dir = str(Path(scratch) / "saved_models")
        started = time.time()
        vqvae_run = generate.train_vqvae(config)
        vqvae_minutes = (time.time() - started) / 60
        started = time.time()
        run = generate.train(config, vqvae_run)
        token_minutes = (time.time() - started) / 60
        judge = generate.train_judge(config)
        prompts = args.generate_prompts
        metrics = generate.evaluate(run, judge, prompts=prompts)
        print(metrics)
        unguided = dataclasses.replace(config.sample, guidance_scale=1.0)
        texts, objects, _ = generate.prompts_of(config, "test", prompts)
        words = generate.object_words(config.data.source)
        no_guidance, _ = generate.judge_scenes(judge, np.concatenate(
            [run.decode(run.sample_tokens(texts[i:i + 64], unguided, seed=i)) for i in range(0, len(texts), 64)]),
            objects, *words)
        tokens = run.grid_size ** 2
        speed = []
        for batch in (1, 16):
            batch_prompts = texts[:batch]
            cached = _seconds_per_image(lambda: run.sample_tokens(batch_prompts), batch)
            uncached = _seconds_per_image(lambda: run.sample_tokens(batch_prompts, use_cache=False), batch, repeats=1)
            speed.append([batch, f"{cached * 1000:.0f}", f"{uncached * 1000:.0f}", f"{uncached / cached:.1f}×"])
        exported = generate.export(run)
        served = tf.saved_model.load(str(exported))
        served_rows = []
        for batch in (1, 16):
            call = lambda: served.signatures["generate"](prompt=tf.constant(texts[:batch]), seed=tf.constant(0, tf.int64),  # noqa: E731
                                                         temperature=tf.constant(1.0), top_k=tf.constant(0))
            served_rows.append(f"batch {batch}: {_seconds_per_image(call, batch) * 1000:.0f} ms")
        parity = json.loads((exported / "tflite" / "parity.json").read_text())
    v, m = config.vqvae, config.model
    body = (f"VQ-VAE: ×{v.downsample} ({tokens} tokens per {config.data.image_size}px image), {v.num_codes} codes of "
            f"{v.code_dim}, EMA {v.ema_decay}, {config.vqvae_train.epochs} epochs in {vqvae_minutes:.1f} min. Token transformer: "
            f"{m.num_layers} × {m.hidden_dim}, {config.train.epochs} epochs in {token_minutes:.1f} min (both stages "
            f"{vqvae_minutes + token_minutes:.1f} min). Fidelity judged by the attribute classifier on {prompts} prompts per "
            f"split, one sample each, guidance {config.sample.guidance_scale}, temperature {config.sample.temperature}.\n\n")
    body += table(["measure", "value"], [
        ["reconstruction PSNR (test, dB)", f"{metrics['reconstruction_psnr']:.2f}"],
        ["codebook usage / perplexity (test)", f"{metrics['reconstruction_codebook_usage']:.3f} / {metrics['reconstruction_perplexity']:.1f}"],
        ["prompt fidelity, test prompts", f"{metrics['test_prompt_fidelity']:.3f}"],
        ["prompt fidelity, test prompts, no guidance", f"{no_guidance:.3f}"],
        ["prompt fidelity, held-out colour–shape prompts", f"{metrics['heldout_prompt_fidelity']:.3f}"],
        ["judge accuracy on real test / held-out images", f"{metrics['test_judge_accuracy_on_real_images']:.3f} / {metrics['heldout_judge_accuracy_on_real_images']:.3f}"],
        ["SavedModel `generate`, time per image", ", ".join(served_rows)],
        ["TFLite VQ-VAE decoder parity (max pixel difference, float32)", f"{parity['vqvae_decoder_float32.tflite']['max_pixel_difference']:.2e}"],
    ])
    body += f"\n\nSampling time per image, {tokens} tokens (median of 3 after warm-up; without the cache: one timed pass):\n\n"
    body += table(["prompts per call", "with KV cache (ms)", "without cache (ms)", "cache speed-up"], speed)
    update_section("generate", body, f"python tools/bench.py generate --generate-prompts {prompts}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["retrieval", "serving", "scaling", "vqa", "classify", "caption", "generate"])
    parser.add_argument("--vs-open-clip", action="store_true")
    parser.add_argument("--skip-quality", action="store_true", help="skip the full training run")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="serving: requests per client per cell")
    parser.add_argument("--seconds", type=float, default=20, help="serving: time bound per cell")
    parser.add_argument("--epochs", type=int, default=8, help="scaling: epochs per setup")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="vqa: seeds of the default-config runs")
    parser.add_argument("--skip-fusions", action="store_true", help="vqa: skip the fusion comparison")
    parser.add_argument("--fusion-epochs", type=int, default=20, help="vqa: epochs per fusion variant (default: the default config's)")
    parser.add_argument("--classify-epochs", type=int, default=6, help="classify: epochs per row")
    parser.add_argument("--pretrain-epochs", type=int, default=5, help="classify: retrieval epochs for the preset")
    parser.add_argument("--clip-epochs", type=int, default=12, help="vqa: epochs on the built-in video clips")
    parser.add_argument("--tflite-questions", type=int, default=2000, help="vqa: test questions run through TFLite int8")
    parser.add_argument("--caption-epochs", type=int, default=0, help="caption: epochs per decoder (default: the config's)")
    parser.add_argument("--generate-prompts", type=int, default=200, help="generate: prompts per split for fidelity")
    args = parser.parse_args()
    {"generate": bench_generate, "caption": bench_caption, "retrieval": bench_retrieval, "serving": bench_serving, "scaling": bench_scaling, "vqa": bench_vqa, "classify": bench_classify}[args.name](args)


if __name__ == "__main__":
    main()
