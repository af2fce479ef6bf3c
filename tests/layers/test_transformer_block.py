"""TransformerBlock computes what keras-hub's pre-norm TransformerEncoder computes (the oracle: keras-hub's
forward pass with the same weights), padding included, in float32 and mixed bfloat16; it round-trips."""

import keras
import keras_hub
import numpy as np
import pytest

from tfmm.layers import TransformerBlock
from tfmm.testing import assert_keras_round_trip


def _pair(policy="float32"):
    rng = np.random.default_rng(0)
    reference = keras_hub.layers.TransformerEncoder(32, 2, activation="gelu", normalize_first=True, dtype=policy)
    block = TransformerBlock(8, 2, 32, dtype=policy)
    x = rng.normal(size=(3, 5, 8)).astype("float32")
    reference(x), block(x)
    for weight in reference.weights:  # biases and norms off their zero / one init, so a misplaced one shows
        weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    attention = reference._self_attention_layer
    parts = (attention._query_dense, attention._key_dense, attention._value_dense)
    block.attention_norm.set_weights(reference._self_attention_layer_norm.get_weights())
    block.feedforward_norm.set_weights(reference._feedforward_layer_norm.get_weights())
    block.qkv.set_weights([np.concatenate([np.reshape(p.kernel.numpy(), (8, -1)) for p in parts], axis=1),
                           np.concatenate([np.reshape(p.bias.numpy(), (-1,)) for p in parts])])
    block.attention_output.set_weights([np.reshape(attention._output_dense.kernel.numpy(), (8, 8)),
                                        attention._output_dense.bias.numpy()])
    block.intermediate.set_weights(reference._feedforward_intermediate_dense.get_weights())
    block.feedforward_output.set_weights(reference._feedforward_output_dense.get_weights())
    return reference, block, x


@pytest.mark.parametrize("policy,tolerance", [("float32", 1e-5), ("mixed_bfloat16", 0.1)])
def test_same_outputs_as_keras_hub_transformer_encoder(policy, tolerance):
    reference, block, x = _pair(policy)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], "int32")
    expected = keras.ops.convert_to_numpy(keras.ops.cast(reference(x, padding_mask=mask), "float32"))
    got = keras.ops.convert_to_numpy(keras.ops.cast(block(x, padding_mask=mask), "float32"))
    assert got.dtype == np.float32 and block(x).dtype == ("bfloat16" if policy == "mixed_bfloat16" else "float32")
    np.testing.assert_allclose(got, expected, atol=tolerance)
    # what sits in padded positions changes nothing for the real tokens
    changed = x.copy()
    changed[1, 3:] = 9.0
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.cast(block(changed, padding_mask=mask), "float32"))[1, :3],
                               got[1, :3], atol=tolerance)
    no_mask = keras.ops.convert_to_numpy(keras.ops.cast(block(x), "float32"))
    np.testing.assert_allclose(no_mask[0], got[0], atol=tolerance)  # an all-ones mask is no mask


def test_round_trip():
    _, block, x = _pair()
    inputs = keras.Input((5, 8))
    assert_keras_round_trip(keras.Model(inputs, block(inputs)), x)


def test_lora_adapts_the_query_key_value_projection_of_tfmm_encoders():
    from tfmm.encoders import TransformerTextEncoder
    from tfmm.encoders.pretrained import set_trainable

    encoder = TransformerTextEncoder(20, 6, hidden_dim=8, num_layers=2, num_heads=2, intermediate_dim=16)
    inputs = {"token_ids": np.arange(12).reshape(2, 6).astype("int32") % 20, "padding_mask": np.ones((2, 6), "int32")}
    before = keras.ops.convert_to_numpy(encoder(inputs)["pooled_output"])
    set_trainable(encoder, ("lora", 2))
    trainable = [w.path for w in encoder.trainable_weights]
    assert sum("lora_kernel" in p for p in trainable) == 4  # A and B of two blocks' qkv
    assert not any(p.endswith("/kernel") and "lora" not in p for p in trainable)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder(inputs)["pooled_output"]), before, atol=1e-6)


def test_initial_weights_spread_like_keras_hubs():
    """The same training start as the keras-hub block it replaced: each kernel's range matches."""
    reference = keras_hub.layers.TransformerEncoder(256, 4, activation="gelu", normalize_first=True)
    block = TransformerBlock(64, 4, 256)
    x = np.zeros((1, 3, 64), "float32")
    reference(x), block(x)
    attention = reference._self_attention_layer
    pairs = [(attention._query_dense, block.qkv), (attention._output_dense, block.attention_output),
             (reference._feedforward_intermediate_dense, block.intermediate),
             (reference._feedforward_output_dense, block.feedforward_output)]
    for theirs, ours in pairs:
        assert np.abs(ours.kernel.numpy()).max() == pytest.approx(np.abs(theirs.kernel.numpy()).max(), rel=0.05)


def test_initial_kernels_are_independent_draws():
    """No kernel starts as a copy of another's values (an unseeded Keras initializer shared by two layers holds
    one seed: the second kernel was the first one's leading values), within a block or across blocks."""
    from tfmm.encoders import TransformerTextEncoder

    encoder = TransformerTextEncoder(50, 8, hidden_dim=64, num_layers=2, num_heads=4, intermediate_dim=128)
    kernels = [w.numpy().ravel() for w in encoder.weights if w.path.endswith("/kernel") and "block" in w.path]
    assert len(kernels) == 8
    for i in range(len(kernels)):
        for j in range(i + 1, len(kernels)):
            n = min(kernels[i].size, kernels[j].size)
            assert abs(np.corrcoef(kernels[i][:n], kernels[j][:n])[0, 1]) < 0.1, (i, j)
