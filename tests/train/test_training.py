import subprocess
import sys

import keras
import numpy as np
import pytest

from tfmm.errors import TfmmError
from tfmm.train import choose_strategy
from tfmm.train.callbacks import atomic_save_model
from tfmm.train.schedules import WarmupCosine

MIRRORED_FIT = r"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np, tfmm
from tfmm.encoders import build_image_encoder, build_text_encoder
from tfmm.models import CLIPBackbone, ContrastiveRetriever
from tfmm.train import choose_strategy
strategy = choose_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
rng = np.random.default_rng(0)
data = {"images": rng.random((32, 16, 16, 3), dtype=np.float32), "token_ids": rng.integers(1, 50, (32, 8)).astype("int32"),
        "padding_mask": np.ones((32, 8), "int32")}
dataset = tf.data.Dataset.from_tensor_slices(data).batch(16)
with strategy.scope():
    model = ContrastiveRetriever(CLIPBackbone(build_image_encoder("cnn", "tiny", 16), build_text_encoder("gru", "tiny", 50, 8), 8))
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
    atomic_save_model(model, tmp_path / "model.keras")
    before = (tmp_path / "model.keras").read_bytes()

    def crash(self, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"half")
        raise OSError("killed")

    monkeypatch.setattr(keras.Model, "save", crash)
    with pytest.raises(OSError):
        atomic_save_model(model, tmp_path / "model.keras")
    assert (tmp_path / "model.keras").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "model.keras").get_weights()[0], model.get_weights()[0])
