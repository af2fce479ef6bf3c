"""A server someone may attack: each hostile request fails alone, with TF Serving's codes, and a good request
on the same server is answered afterwards."""

import base64
import logging
import struct
import threading
import time
import zlib

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.conftest import free_port, save_half_plus_two, start_server
from tfmm.serving.limits import Limits


class Spinner(tf.Module):
    """A model that computes for as long as its input asks: `n` milliseconds of wall-clock time, however fast the
    CPU (a fixed number of loop steps ended within the deadline on a fast Xeon)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="n")])
    def spin(self, n):
        start, seconds = tf.timestamp(), tf.cast(n[0], tf.float64) / 1000.0
        total = tf.while_loop(lambda total: tf.timestamp() - start < seconds, lambda total: (total + tf.sin(total),),
                              [tf.constant(0.0)])[0]
        return {"y": tf.fill(tf.shape(n), total)}


def png_declaring(width, height):
    """A few bytes of valid PNG header that declare `width` × `height` pixels (and hold no pixel data)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    save_half_plus_two(root / "half_plus_two" / "1")
    spinner = Spinner()
    tf.saved_model.save(spinner, str(root / "spinner" / "1"), signatures={"serving_default": spinner.spin})
    (root / "models.config").write_text(f"""
model_config_list {{
  config {{ name: "half_plus_two" base_path: "{root / 'half_plus_two'}" model_platform: "tensorflow" }}
  config {{ name: "spinner" base_path: "{root / 'spinner'}" model_platform: "tensorflow" }}
}}""")
    from tfmm.serving.config import parse_model_config_file
    from tfmm.serving.server import ModelServer

    server = ModelServer(parse_model_config_file(root / "models.config"), grpc_port=free_port(), rest_port=free_port(),
                         poll_seconds=0.2, max_request_bytes=1 << 20,
                         limits=Limits(max_rows=8, max_image_pixels=1_000_000, timeout_seconds=0.5, max_concurrent=1))
    server.start()
    yield server
    server.stop()


def rest(server, model, body):
    return httpx.post(f"http://127.0.0.1:{server.rest_port}/v1/models/{model}:predict", json=body, timeout=60)


def answered(server):
    """A good request gets its answer (waiting, at most 60 s, for a computation a deadline gave up on)."""
    deadline = time.time() + 60
    while True:
        reply = rest(server, "half_plus_two", {"instances": [2.0]})
        if reply.status_code != 429 or time.time() > deadline:
            return reply.status_code == 200 and reply.json() == {"predictions": [3.0]}
        time.sleep(0.2)


def test_an_image_that_declares_too_many_pixels_is_refused_undecoded(hostile):
    bomb = png_declaring(30000, 30000)
    assert len(bomb) < 80
    reply = rest(hostile, "half_plus_two", {"signature_name": "echo", "instances": [{"b64": base64.b64encode(bomb).decode()}]})
    assert reply.status_code == 400
    assert "image #0 of input text declares more than 178,956,970 pixels; this server takes at most 1,000,000" \
        in reply.json()["error"]
    medium = base64.b64encode(png_declaring(2000, 1000)).decode()
    reply = rest(hostile, "half_plus_two", {"signature_name": "echo", "inputs": {"text": [{"b64": medium}]}})
    assert reply.status_code == 400 and "declares 2,000,000 pixels" in reply.json()["error"]
    ok = rest(hostile, "half_plus_two", {"signature_name": "echo", "inputs": {"text": ["plain text is no image"]}})
    assert ok.status_code == 200
    assert answered(hostile)


def test_too_many_rows_are_refused(hostile):
    reply = rest(hostile, "half_plus_two", {"instances": [1.0] * 9})
    assert reply.status_code == 400 and "input x has 9 rows; this server takes at most 8" in reply.json()["error"]
    assert rest(hostile, "half_plus_two", {"instances": [1.0] * 8}).status_code == 200


def test_a_slow_request_hits_its_deadline_over_rest_and_grpc(hostile):
    reply = rest(hostile, "spinner", {"instances": [2_000]})
    assert reply.status_code == 504 and "did not answer within 0.5 s" in reply.json()["error"]
    assert answered(hostile)
    with grpc.insecure_channel(f"127.0.0.1:{hostile.grpc_port}") as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "spinner"
        request.inputs["n"].CopyFrom(tf.make_tensor_proto(np.array([2_000], np.int64)))
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert answered(hostile)


def test_requests_over_the_concurrency_limit_are_refused(hostile):
    slow = threading.Thread(target=rest, args=(hostile, "spinner", {"instances": [2_000]}))
    slow.start()
    time.sleep(0.2)  # the slow request holds the one slot
    reply = rest(hostile, "half_plus_two", {"instances": [2.0]})
    assert reply.status_code == 429 and "the server is busy: 1 requests are running" in reply.json()["error"]
    slow.join()
    assert answered(hostile)


def test_client_chosen_model_names_make_no_metric_series(hostile):
    for name in ("evil-1", "evil-2", "evil-3"):
        assert rest(hostile, name, {"instances": [1.0]}).status_code == 404
    metrics = httpx.get(f"http://127.0.0.1:{hostile.rest_port}/monitoring/prometheus/metrics", timeout=30).text
    assert "evil" not in metrics and 'model_name="(unknown)"' in metrics
    assert answered(hostile)


def test_an_unexpected_exception_is_an_internal_error_and_counted(hostile, monkeypatch):
    from tfmm.serving.servable import Servable

    def broken(self, *args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Servable, "run", broken)
    reply = rest(hostile, "half_plus_two", {"instances": [2.0]})
    assert reply.status_code == 500
    assert reply.json()["error"] == "internal error (ZeroDivisionError); the server log has the details"
    metrics = httpx.get(f"http://127.0.0.1:{hostile.rest_port}/monitoring/prometheus/metrics", timeout=30).text
    assert ':request_count_total{api="predict",entrypoint="REST",model_name="half_plus_two",status="INTERNAL"} 1.0' in metrics
    monkeypatch.undo()
    assert answered(hostile)


def test_listening_beyond_loopback_warns(model_root, caplog):
    with caplog.at_level(logging.WARNING, logger="tfmm.serving"):
        running = start_server(model_root, host="0.0.0.0")
        running.stop()
    assert any("other machines can reach this server" in record.message for record in caplog.records)
