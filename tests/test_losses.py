import numpy as np
import pytest

from tfmm.errors import TfmmError
from tfmm.losses import CONTRASTIVE_LOSSES, infonce_loss, triplet_margin_loss


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def test_infonce_matches_numpy_reference():
    rng = np.random.default_rng(0)
    images, texts = _unit(rng.normal(size=(6, 4))), _unit(rng.normal(size=(6, 4)))
    logits = 10.0 * images @ texts.T
    expected = (-np.diag(_log_softmax(logits)).mean() - np.diag(_log_softmax(logits.T)).mean()) / 2
    assert float(infonce_loss(images.astype("float32"), texts.astype("float32"), 10.0)) == pytest.approx(expected, rel=1e-5)


def test_triplet_matches_numpy_reference():
    rng = np.random.default_rng(1)
    images, texts = _unit(rng.normal(size=(5, 3))), _unit(rng.normal(size=(5, 3)))
    sim = images @ texts.T
    pos = np.diag(sim)[:, None]
    off = 1 - np.eye(5)
    expected = ((np.maximum(0, 0.2 - pos + sim) + np.maximum(0, 0.2 - pos + sim.T)) * off).sum(1).mean()
    assert float(triplet_margin_loss(images.astype("float32"), texts.astype("float32"), margin=0.2)) == pytest.approx(expected, rel=1e-5)


def test_perfect_pairs_give_low_loss_and_unknown_loss_is_named():
    e = np.eye(4, dtype="float32")
    assert float(infonce_loss(e, e, 100.0)) < 1e-6
    with pytest.raises(TfmmError, match="valid: infonce, triplet"):
        CONTRASTIVE_LOSSES.get("clip")
