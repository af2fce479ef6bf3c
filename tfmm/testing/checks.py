import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

import keras
import numpy as np

from tfmm import cli


def _outputs(value):
    if isinstance(value, dict):
        return {k: np.asarray(v) for k, v in value.items()}
    return {"output": np.asarray(value)}


def assert_keras_round_trip(model, inputs, atol=1e-6):
    """Saves `model` as `.keras`, loads it with `safe_mode=True`, and checks the outputs are equal."""
    expected = _outputs(model(inputs, training=False))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    got = _outputs(loaded(inputs, training=False))
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=atol, err_msg=key)
    return loaded


def assert_layer_round_trip(layer, *inputs, atol=1e-6):
    """`from_config(get_config())` rebuilds the layer; with copied weights it gives the same outputs."""
    expected = _outputs(layer(*inputs))
    clone = layer.__class__.from_config(layer.get_config())
    clone(*inputs)
    clone.set_weights(layer.get_weights())
    got = _outputs(clone(*inputs))
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=atol, err_msg=key)
    return clone


def tiny_retrieval_config(data_dir, output_dir, **train):
    """The smoke-sized retrieval config the tests train (big_vision's `smoke` variant)."""
    from tfmm.apps.retrieval import RetrievalConfig

    config = RetrievalConfig()
    config.data.shapes_config = "tiny"
    config.data.image_size = 32
    config.data.data_dir = str(data_dir)
    config.data.batch_size = 16
    config.model.image_encoder.size = "tiny"
    config.model.text_encoder.size = "tiny"
    config.model.embedding_dim = 32
    config.model.sequence_length = 24
    config.train.epochs = train.get("epochs", 3)
    config.train.learning_rate = 3e-3
    config.train.output_dir = str(output_dir)
    config.export.base_dir = str(output_dir / "saved_models")
    config.export.representative_examples = 16
    return config


@dataclasses.dataclass
class TrainedApp:
    """A model an app trained in a test: the task (loaded from its preset), the config, the run directory."""

    runner: object
    task: object
    config: object
    path: Path

    def export(self, name=None):
        return self.runner.export(self.task, self.config, name)

    def evaluate(self, split="test", **options):
        return self.runner.app.evaluate(self.task, self.config, split, **options)


def train_app(app, config, run_path=None):
    """Trains `app` (a `tfmm.apps.runner.App`) on `config` as its `train` command does."""
    from tfmm.apps.runner import Runner

    runner = Runner(app)
    run_path = Path(run_path or cli.run_dir(config.train.output_dir, app.name))
    task = app.train(runner, config, argparse.Namespace(run_dir=str(run_path)))
    return TrainedApp(runner, task, config, run_path)


def assert_picture(path, min_side=64):
    """`path` is a PNG picture of at least `min_side` pixels a side (what `--plot` and main jobs write)."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= min_side, (path, image.format, image.size)


def record_calls(monkeypatch, owner, name):
    """Wraps `owner.name` so each call's first argument is appended to the returned list (the call still runs)."""
    calls = []
    original = getattr(owner, name)

    def recording(first, *args, **kwargs):
        calls.append(first)
        return original(first, *args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return calls
