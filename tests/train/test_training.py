import subprocess
import sys

import keras
import numpy as np
import pytest

from tfmm.errors import TfmmError
from tfmm.train import choose_strategy
from tfmm.train.callbacks import atomic_save_weights
from tfmm.train.schedules import WarmupCosine

MIRRORED_FIT = r"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np, tfmm
from tfmm.testing import tiny_tasks
from tfmm.train import choose_strategy
strategy = choose_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
texts = [tiny_tasks.TEXTS[i % len(tiny_tasks.TEXTS)] + f" {i}" for i in range(32)]
dataset = tf.data.Dataset.from_tensor_slices({"images": tiny_tasks.images(32), "text": texts}).batch(16)  # raw batches
with strategy.scope():
    model = tiny_tasks.retriever()
    model.compile(optimizer="adam")
history = model.fit(dataset, epochs=3, verbose=0)
losses = history.history["loss"]
assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
print("OK", losses)
"""


def test_fit_under_mirrored_strategy_over_two_logical_cpus():
    result = subprocess.run([sys.executable, "-c", MIRRORED_FIT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def test_strategy_names_are_checked(monkeypatch):
    with pytest.raises(TfmmError, match="unknown strategy 'ddp'"):
        choose_strategy("ddp")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(TfmmError, match="TF_CONFIG is not valid"):
        choose_strategy("auto")


def test_warmup_cosine_schedule():
    schedule = WarmupCosine(1.0, total_steps=110, warmup_steps=10, final_fraction=0.0)
    values = [float(schedule(s)) for s in (0, 4, 9, 10, 60, 110)]
    assert values[0] == pytest.approx(0.1) and values[2] == pytest.approx(1.0)
    assert values[3] == pytest.approx(1.0) and values[4] == pytest.approx(0.5, abs=1e-6) and values[5] == pytest.approx(0.0, abs=1e-6)
    assert WarmupCosine.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_atomic_checkpoint_never_leaves_a_partial_file(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "best.weights.h5"
    atomic_save_weights(model, path)
    before = path.read_bytes()

    def crash(self, target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"half")
        raise OSError("killed")

    monkeypatch.setattr(keras.Model, "save_weights", crash)
    with pytest.raises(OSError):
        atomic_save_weights(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["best.weights.h5"]
    fresh = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.get_weights()[0], model.get_weights()[0])


def test_initial_weights_do_not_depend_on_random_draws_before_training(tiny_config, monkeypatch, tmp_path):
    """A first run builds its TFDS dataset between the session's seeding and the model: the initial weights
    must be those of a run that found the data already built."""
    import random

    import tensorflow as tf

    from tfmm.train import session as module

    class Stop(Exception):
        pass

    initial = []

    def capture(model, *args, **kwargs):
        initial.append([weight.numpy() for weight in model.weights])
        raise Stop

    monkeypatch.setattr(module, "fit", capture)
    for draw in (False, True):
        session = module.TrainingSession(tiny_config)
        if draw:  # what building data may do
            random.random(), np.random.random(3), tf.random.uniform([3]), keras.random.normal([3])
        with pytest.raises(Stop):
            session.train("probe", lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), None, None, 64,
                          tmp_path / f"run{draw}")
    assert len(initial) == 2
    for before, after in zip(*initial):
        np.testing.assert_array_equal(before, after)
