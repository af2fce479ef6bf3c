import contextlib
import json
import shutil
import socket

import pytest
import tensorflow as tf


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(name, base_path, tmp_path):
    """A `tfmm.serving` server of one model (`base_path` holds its numbered versions), stopped afterwards."""
    from tfmm.serving.config import parse_model_config_file
    from tfmm.serving.server import ModelServer

    config_path = tmp_path / "models.config"
    config_path.write_text(f'model_config_list {{ config {{ name: "{name}" base_path: "{base_path}" '
                           f'model_platform: "tensorflow" }} }}')
    server = ModelServer(parse_model_config_file(config_path), grpc_port=free_port(), rest_port=free_port(),
                         poll_seconds=0.2).start()
    try:
        yield server
    finally:
        server.stop()


PARITY = {"half_float32.tflite": {"min_cosine": 1.0, "gate": {"shipped": True}}}


class HalfPlusTwo(tf.Module):
    """TF Serving's own test fixture, rebuilt: y = 0.5 x + 2, plus a two-input and a bytes signature."""

    def __init__(self):
        super().__init__()
        self.a = tf.Variable(0.5)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"y": self.a * x + 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"), tf.TensorSpec([None], tf.int32, name="k")])
    def two_inputs(self, x, k):
        return {"y": self.a * x + 2.0, "k_twice": k * 2}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def echo(self, text):
        return {"text_bytes": text, "length": tf.strings.length(text)}


def save_half_plus_two(path):
    module = HalfPlusTwo()
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": module.serve, "two_inputs": module.two_inputs, "echo": module.echo,
    })
    (path / "assets.extra").mkdir()  # what a tfmm export keeps beside its TFLite files, served as metadata
    (path / "assets.extra" / "tfmm_parity.json").write_text(json.dumps(PARITY))
    return path


@pytest.fixture(scope="session")
def model_root(tmp_path_factory, exported):
    """A models tree: half_plus_two/1 and retrieval/1 (the session's trained export)."""
    root = tmp_path_factory.mktemp("models")
    save_half_plus_two(root / "half_plus_two" / "1")
    shutil.copytree(exported, root / "retrieval" / "1")
    return root


def start_server(model_root, batching=None, poll=0.2, **options):
    from tfmm.serving.config import parse_model_config_file
    from tfmm.serving.server import ModelServer

    config_path = model_root / "models.config"
    config_path.write_text(f"""
model_config_list {{
  config {{ name: "half_plus_two" base_path: "{model_root / 'half_plus_two'}" model_platform: "tensorflow"
           model_version_policy {{ latest {{ num_versions: 1 }} }} }}
  config {{ name: "retrieval" base_path: "{model_root / 'retrieval'}" model_platform: "tensorflow" }}
}}
""")
    server = ModelServer(parse_model_config_file(config_path), grpc_port=free_port(), rest_port=free_port(),
                         poll_seconds=poll, batching=batching, max_request_bytes=1 << 20, **options)
    return server.start()


@pytest.fixture(scope="module")
def server(model_root):
    running = start_server(model_root)
    yield running
    running.stop()
