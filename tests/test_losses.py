import numpy as np
import pytest

from tfmm.errors import TfmmError
from tfmm.losses import CONTRASTIVE_LOSSES, infonce_loss, sigmoid_loss, triplet_margin_loss


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


def _mixing(partner, weight):
    """Image i holds `weight` of text i and 1 − `weight` of text partner[i]."""
    count = len(partner)
    return weight * np.eye(count) + (1 - weight) * np.eye(count)[partner]


def test_infonce_with_mixed_images_scores_soft_targets():
    rng = np.random.default_rng(2)
    images, texts = _unit(rng.normal(size=(4, 5))), _unit(rng.normal(size=(4, 5)))
    partner, weight = np.array([1, 2, 3, 0]), 0.7
    mixing = _mixing(partner, weight)
    logits = 10.0 * images @ texts.T
    # Image→text: λ on its own caption, 1 − λ on its partner's; text→image: text j is in image j (λ) and
    # in the image whose partner is j (1 − λ).
    by_text = mixing.T / mixing.T.sum(1, keepdims=True)
    expected = (-(mixing * _log_softmax(logits)).sum(1).mean() - (by_text * _log_softmax(logits.T)).sum(1).mean()) / 2
    got = infonce_loss(images.astype("float32"), texts.astype("float32"), 10.0, mixing=mixing.astype("float32"))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    plain = infonce_loss(images.astype("float32"), texts.astype("float32"), 10.0, mixing=np.eye(4, dtype="float32"))
    assert float(plain) == pytest.approx(float(infonce_loss(images.astype("float32"), texts.astype("float32"), 10.0)))


@pytest.mark.parametrize("mixed", [False, True])
def test_sigmoid_matches_numpy_reference(mixed):
    rng = np.random.default_rng(3)
    images, texts = _unit(rng.normal(size=(5, 4))), _unit(rng.normal(size=(5, 4)))
    labels = _mixing(np.array([4, 0, 1, 2, 3]), 0.6) if mixed else np.eye(5)
    logits = 8.0 * images @ texts.T - 3.0
    sigmoid = 1 / (1 + np.exp(-logits))
    expected = -(labels * np.log(sigmoid) + (1 - labels) * np.log(1 - sigmoid)).sum(1).mean()
    got = sigmoid_loss(images.astype("float32"), texts.astype("float32"), 8.0, bias=-3.0,
                       mixing=labels.astype("float32") if mixed else None)
    assert float(got) == pytest.approx(expected, rel=1e-5)


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
    with pytest.raises(TfmmError, match="valid: infonce, sigmoid, triplet"):
        CONTRASTIVE_LOSSES.get("clip")
