import numpy as np

from tfmm.layers import AttributeFit
from tfmm.testing import assert_layer_round_trip


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _oracle(layer, probabilities, words, padding_mask):
    """Brute force: loop over examples, classes and words."""
    kernel, bias = (np.asarray(w, np.float64) for w in layer.classify.get_weights())
    classes = probabilities.shape[-1]
    out = np.zeros(probabilities.shape[:-1] + (1,))
    for b in range(len(words)):
        named = np.zeros(classes)
        for word, valid in zip(words[b], padding_mask[b]):
            if valid:
                named = np.maximum(named, _softmax(word @ kernel + bias)[:classes])
        matched = (probabilities[b] * named).sum(-1)
        out[b, ..., 0] = 1 - named.max() * (1 - matched)
    return out


def test_attribute_fit_matches_a_brute_force_loop_and_ignores_padding():
    rng = np.random.default_rng(0)
    layer = AttributeFit(4)
    probabilities = _softmax(rng.normal(size=(3, 5, 5, 4)) * 3).astype("float32")
    words = rng.normal(size=(3, 6, 8)).astype("float32")
    padding_mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], bool)
    got = np.asarray(layer(probabilities, words, padding_mask))
    np.testing.assert_allclose(got, _oracle(layer, probabilities, words, padding_mask), atol=1e-5)
    padded = words.copy()
    padded[1, 3:] = 100.0  # what sits under the padding cannot change the fit
    np.testing.assert_allclose(np.asarray(layer(probabilities, padded, padding_mask)), got, atol=1e-6)
    assert_layer_round_trip(layer, probabilities, words, padding_mask)


def test_a_word_that_names_a_class_fits_only_positions_of_that_class():
    """With the word classifier set by hand: a word naming class 2 fits the positions whose class is 2 and no
    other; words naming nothing fit everywhere (nothing to check)."""
    layer = AttributeFit(3)
    layer(np.zeros((1, 2, 2, 3), "float32"), np.zeros((1, 2, 4), "float32"))
    kernel = np.zeros((4, 4), "float32")
    kernel[np.arange(4), np.arange(4)] = 20.0  # one-hot word k → class k (k = 3: "none of them")
    layer.classify.set_weights([kernel, np.zeros(4, "float32")])
    probabilities = np.eye(3, dtype="float32")[[[0, 1], [2, 2]]][None]  # positions of classes 0, 1 / 2, 2
    none, names_two = np.eye(4, dtype="float32")[3], np.eye(4, dtype="float32")[2]
    fit = np.asarray(layer(probabilities, np.stack([none, names_two])[None]))[0, ..., 0]
    np.testing.assert_allclose(fit, [[0, 0], [1, 1]], atol=1e-6)
    fit = np.asarray(layer(probabilities, np.stack([none, none])[None]))[0, ..., 0]
    np.testing.assert_allclose(fit, np.ones((2, 2)), atol=1e-6)
