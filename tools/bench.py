"""Benchmarks: `python tools/bench.py <name>` prints a table and updates its section of BENCHMARKS.md.

    python tools/bench.py retrieval [--vs-open-clip] [--skip-quality]

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
        rows = [[k, f"{v:.1f}"] for k, v in {**ours, **theirs}.items()]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["retrieval"])
    parser.add_argument("--vs-open-clip", action="store_true")
    parser.add_argument("--skip-quality", action="store_true", help="skip the full training run")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    {"retrieval": bench_retrieval}[args.name](args)


if __name__ == "__main__":
    main()
