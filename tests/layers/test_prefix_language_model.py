"""The prefix language model: a keras-hub GPT-2 or Gemma backbone reading image tokens before its words; decoding
one word at a time through the key/value caches gives the logits of one full causal pass."""

import keras_hub
import numpy as np
import pytest

from tfmm.layers.prefix_language_model import PrefixLanguageModel


def _backbone(family):
    if family == "gpt2":
        return keras_hub.models.GPT2Backbone(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, dropout=0.0, max_sequence_length=32)
    return keras_hub.models.GemmaBackbone(vocabulary_size=30, num_layers=2, num_query_heads=2, num_key_value_heads=1,
                                          hidden_dim=16, intermediate_dim=32, head_dim=8)


@pytest.mark.parametrize("family", ["gpt2", "gemma"])
def test_cached_steps_match_one_causal_pass_and_the_prefix_matters(family):
    model = PrefixLanguageModel(_backbone(family))
    rng = np.random.default_rng(0)
    prefix = rng.normal(size=(2, 3, 16)).astype("float32")
    token_ids = rng.integers(1, 30, size=(2, 5)).astype("int32")
    full = np.asarray(model(prefix, token_ids, np.ones((2, 5), bool)))
    state = model.initial_state(prefix, max_length=5)
    for index in range(5):
        logits, state = model.step(token_ids[:, index], state, index)
        np.testing.assert_allclose(np.asarray(logits), full[:, index], atol=1e-4)
    # a word sees the words before it, not after; and it sees the image tokens
    changed = token_ids.copy()
    changed[:, 3] = (changed[:, 3] % 29) + 1
    again = np.asarray(model(prefix, changed, np.ones((2, 5), bool)))
    np.testing.assert_allclose(again[:, :3], full[:, :3], atol=1e-5)
    assert not np.allclose(again[:, 3:], full[:, 3:])
    other = np.asarray(model(prefix[::-1], token_ids, np.ones((2, 5), bool)))
    assert not np.allclose(other[:, 0], full[:, 0], atol=1e-3)  # the image tokens change even the first word
