"""train.matmul_precision = "bfloat16": matmuls see bfloat16 inputs and everything else stays float32 while
the block is open, float32 again after it; settings a machine cannot honour are refused."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmm.apps.retrieval import Retrieval
from tfmm.config import load_config
from tfmm.errors import TfmmError
from tfmm.train import matmul_precision as module
from tfmm.train.matmul_precision import bfloat16_matmuls, check_matmul_precision
from tfmm.train.precision import native_bfloat16

ROOT = Path(__file__).resolve().parents[2]
EPS = 2.0 ** -12  # below bfloat16's resolution at 1 (2^-7), well above float32's (2^-23)


def _matmul_then_multiply():
    @tf.function
    def probe(x, w):
        y = tf.matmul(x, w)
        return y, y * (1 + EPS)

    x, w = tf.constant([[1 + EPS, 1.0]]), tf.constant([[1.0], [EPS]])
    return [float(t.numpy().item()) for t in probe(x, w)]


def _train(matmuls):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    with bfloat16_matmuls(matmuls):
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="gelu"),
                                  keras.layers.LayerNormalization(), keras.layers.Dense(1)])
        model.compile(keras.optimizers.AdamW(1e-2), "mse")
        return model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]


def test_matmuls_in_bfloat16_only_inside_the_block():
    if not native_bfloat16():
        pytest.skip("this CPU has no bfloat16 instructions (AMX or AVX-512 BF16): the mode is refused here, "
                    "see test_refused_where_it_cannot_be_honoured")
    exact = [(1 + EPS) + EPS, ((1 + EPS) + EPS) * (1 + EPS)]
    assert _matmul_then_multiply() == pytest.approx(exact, abs=1e-7)
    with bfloat16_matmuls(True):
        # the matmul computes in bfloat16 (1 + EPS and 1 + 2·EPS round to 1) ...
        matmul, product = _matmul_then_multiply()
        assert matmul == 1.0
        # ... and the multiply after it stays float32 (in bfloat16, 1 · (1 + EPS) would round to 1 again)
        assert product == pytest.approx(1 + EPS, abs=1e-7)
    assert _matmul_then_multiply() == pytest.approx(exact, abs=1e-7)
    assert not tf.config.optimizer.get_experimental_options().get(module.OPTION, False)


def test_training_with_bfloat16_matmuls_follows_float32():
    if not native_bfloat16():
        pytest.skip("this CPU has no bfloat16 instructions (AMX or AVX-512 BF16): the mode is refused here")
    reference, matmuls = np.array(_train(False)), np.array(_train(True))
    assert not np.allclose(matmuls, reference, rtol=1e-6, atol=0)  # the rewrite reached the training step
    np.testing.assert_allclose(matmuls, reference, rtol=0.03)
    assert matmuls[-1] < matmuls[0]


def test_refused_where_it_cannot_be_honoured(monkeypatch):
    check_matmul_precision("float32")  # always fine
    monkeypatch.setattr(module, "native_bfloat16", lambda: False)
    with pytest.raises(TfmmError, match="needs a CPU with bfloat16 instructions"):
        check_matmul_precision("bfloat16")
    monkeypatch.setattr(module, "native_bfloat16", lambda: True)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    with pytest.raises(TfmmError, match="needs oneDNN"):
        check_matmul_precision("bfloat16")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    with pytest.raises(TfmmError, match="is a CPU mode"):
        check_matmul_precision("bfloat16")


def test_config_refuses_it_with_mixed_precision_and_unknown_values():
    app = Retrieval()
    with pytest.raises(TfmmError, match="exclude each other"):
        load_config(app.config_class, ROOT / "apps" / "retrieval.toml",
                    ['train.matmul_precision="bfloat16"', "train.mixed_precision=true"])
    with pytest.raises(TfmmError, match="train.matmul_precision.*must be one of float32, bfloat16"):
        load_config(app.config_class, ROOT / "apps" / "retrieval.toml", ['train.matmul_precision="float16"'])
