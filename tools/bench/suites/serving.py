"""serving: requests/s and latency of `tfmm.serving` over REST and gRPC, with and without dynamic batching,
for a light and a compute-bound retrieval export."""

import base64
import io
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import tensorflow as tf
from PIL import Image

from tfmm.apps.retrieval import Retrieval
from tfmm.data.shapes import generate_example
from tools.bench.harness import app_config, median_ms, scratch

BATCHING = ("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 2000 }\n"
            "max_enqueued_batches { value: 1000 }\nnum_batch_threads { value: 2 }\n")


def add_arguments(parser):
    parser.add_argument("--requests", type=int, default=200, help="requests per client per cell")
    parser.add_argument("--seconds", type=float, default=20, help="time bound per cell")


def export_untrained(folder, name, overrides):
    """A retrieval export whose weights do not matter (speed only): one training step, no TFLite."""
    config, runner = app_config(Retrieval(), ["train.epochs=1", "train.steps_per_epoch=1", "export.tflite=false",
                                              *overrides], folder / name)
    return runner.export(runner.train(config), config, name)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(root, batching_file=None):
    import httpx

    grpc_port, rest_port = free_port(), free_port()
    config = Path(root) / "bench_models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{p.name}" base_path: "{p}" model_platform: "tensorflow" }}\n'
        for p in sorted(Path(root).iterdir()) if p.is_dir()) + "}\n")
    command = [sys.executable, "-m", "tfmm.serving", f"--model_config_file={config}", f"--port={grpc_port}",
               f"--rest_api_port={rest_port}", "--file_system_poll_wait_seconds=0"]
    if batching_file:
        command += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{rest_port}/healthz", timeout=1).status_code == 200:
                return process, grpc_port, rest_port
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("the server did not start")


def load(send, clients, requests_per_client, seconds):
    """`clients` threads each send up to `requests_per_client` requests (bounded by `seconds`)."""
    latencies, errors, lock = [], [0], threading.Lock()
    stop_at = time.time() + seconds

    def worker():
        for _ in range(requests_per_client):
            if time.time() > stop_at:
                break
            started = time.perf_counter()
            try:
                send()
                with lock:
                    latencies.append(time.perf_counter() - started)
            except Exception:  # counted, not raised: the table reports errors
                with lock:
                    errors[0] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(int(q * len(latencies)), len(latencies) - 1)] * 1000 if latencies else float("nan")  # noqa: E731
    return {"requests": len(latencies), "throughput": len(latencies) / elapsed, "p50": pick(0.5), "p99": pick(0.99),
            "errors": errors[0]}


def run(args, report):
    import grpc
    import httpx
    import tensorflow_text  # noqa: F401  (the exports tokenise in-graph)
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    smoke = args.smoke
    requests, seconds = (5, 5.0) if smoke else (args.requests, args.seconds)
    client_counts = (1, 2) if smoke else (1, 8, 32)
    buffer = io.BytesIO()
    Image.fromarray(generate_example(0, "test", 0)["image"]).save(buffer, "PNG")
    png = buffer.getvalue()
    rest_body = {"instances": [{"b64": base64.b64encode(png).decode()}]}
    with scratch() as folder:
        root = folder / "models"
        models = {"retrieval": export_untrained(folder, "retrieval", ["data.shapes_config=tiny"] if smoke else [])}
        if not smoke:  # a compute-bound model beside it: the same app with a ViT-base image tower
            models["retrieval_vit_base"] = export_untrained(folder, "retrieval_vit_base", [
                "data.shapes_config=tiny", "data.batch_size=8", "model.image_encoder=vit", "model.image_encoder.size=base"])
        for name, version in models.items():
            (root / name).mkdir(parents=True)
            version.rename(root / name / "1")
        batching = folder / "batching.txt"
        batching.write_text(BATCHING)
        signature = tf.saved_model.load(str(root / "retrieval" / "1")).signatures["serving_default"]
        direct = median_ms(lambda: signature(image_bytes=tf.constant([png])), repeats=20 if smoke else 200)
        rows, overhead, throughput = [], {}, {}
        for batching_on in (False, True):
            process, grpc_port, rest_port = start_server(root, batching if batching_on else None)
            try:
                http = httpx.Client(base_url=f"http://127.0.0.1:{rest_port}", timeout=60,
                                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
                channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                for model in models:
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = model
                    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([png], dtype=tf.string))

                    def send_rest(model=model):
                        response = http.post(f"/v1/models/{model}:predict", json=rest_body)
                        if response.status_code != 200:
                            raise RuntimeError(response.text)

                    def send_grpc(request=request):
                        stub.Predict(request, timeout=60)

                    for api, send in (("REST", send_rest), ("gRPC", send_grpc)):
                        load(send, 1, 3 if smoke else 20, 30)  # warm-up
                        for clients in client_counts:
                            result = load(send, clients, requests, seconds)
                            rows.append([model, api, "on" if batching_on else "off", clients, result["requests"],
                                         round(result["throughput"]), round(result["p50"], 2), round(result["p99"], 2),
                                         result["errors"]])
                            if clients == 1 and not batching_on and model == "retrieval":
                                overhead[api] = result["p50"] - direct
                            throughput[(model, api, batching_on, clients)] = result["throughput"]
                channel.close()
                http.close()
            finally:
                process.terminate()
                process.wait(timeout=30)
    most = client_counts[-1]
    gains = ", ".join(f"{m} {api} {throughput[(m, api, True, most)] / throughput[(m, api, False, most)]:.2f}×"
                      for m in models for api in ("REST", "gRPC"))
    report.table("Requests/s and latency per model, API, batching and concurrent clients",
                 ["model", "API", "batching", "clients", "requests", "requests/s", "p50 (ms)", "p99 (ms)", "errors"], rows,
                 note=("Server in its own process; clients are threads of the benchmark process on the same cores. "
                       f"Up to {requests} requests per client, at most {seconds:.0f} s per cell; batching: max_batch_size 32, "
                       f"batch_timeout_micros 2000, 2 batch threads. In-process SavedModel call: p50 {direct:.2f} ms; "
                       f"server overhead at p50, one client: REST {overhead['REST']:.2f} ms, gRPC {overhead['gRPC']:.2f} ms. "
                       f"Throughput at {most} clients, batching on / off: {gains}."))
    report.record(rest_overhead_ms=overhead["REST"], grpc_overhead_ms=overhead["gRPC"])
