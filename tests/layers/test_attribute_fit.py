import numpy as np
import pytest

from tfmm.layers import AttributeFit
from tfmm.testing import assert_layer_round_trip

CLASS_TOKEN_IDS = [[], [5, 6], [7], [9]]  # class 0 (say, background) named by no word; class 1 by two


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _oracle(probabilities, token_ids, padding_mask):
    """Brute force: loop over examples, classes and tokens."""
    out = np.zeros(probabilities.shape[:-1] + (1,))
    for b in range(len(token_ids)):
        named = np.array([any(valid and token in ids for token, valid in zip(token_ids[b], padding_mask[b]))
                          for ids in CLASS_TOKEN_IDS], float)
        matched = (probabilities[b] * named).sum(-1)
        out[b, ..., 0] = 1 - named.max() * (1 - matched)
    return out


def test_attribute_fit_matches_a_brute_force_loop_and_ignores_padding():
    rng = np.random.default_rng(0)
    layer = AttributeFit(CLASS_TOKEN_IDS)
    probabilities = _softmax(rng.normal(size=(4, 5, 5, 4)) * 3).astype("float32")
    token_ids = np.array([[1, 5, 9, 2, 0, 0], [1, 3, 4, 2, 7, 0], [1, 6, 2, 0, 0, 0], [1, 3, 2, 0, 0, 0]], "int32")
    padding_mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0]], bool)
    got = np.asarray(layer(probabilities, token_ids, padding_mask))
    np.testing.assert_allclose(got, _oracle(probabilities, token_ids, padding_mask), atol=1e-6)
    np.testing.assert_allclose(got[3], 1.0)  # names nothing: fits everywhere
    np.testing.assert_allclose(got[1], 1.0)  # the 7 sits under the padding
    assert_layer_round_trip(layer, probabilities, token_ids, padding_mask)


def test_named_classes_fit_only_their_positions():
    """One-hot positions of classes 0, 1 / 2, 3: "5 and 9" names classes 1 and 3, which fit there and nowhere else."""
    layer = AttributeFit(CLASS_TOKEN_IDS)
    probabilities = np.eye(4, dtype="float32")[[[0, 1], [2, 3]]][None]
    fit = np.asarray(layer(probabilities, np.array([[5, 9]], "int32")))[0, ..., 0]
    np.testing.assert_array_equal(fit, [[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="a token names two classes"):
        AttributeFit([[1], [1, 2]])
    assert AttributeFit([[3, 3], [1]]).class_token_ids == [[3], [1]]  # a word twice in one class is one word
