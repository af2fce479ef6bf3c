"""The peer bench's FLOP count from a traced graph against the 2·m·k·n count by hand."""

import keras
import pytest
import tensorflow as tf

from tools.bench.ceiling import ceiling, forward_flops


def test_forward_flops_counts_dense_einsum_attention_and_convolution():
    images = keras.Input((8, 8, 3), batch_size=4)
    patches = keras.layers.Conv2D(16, 4, strides=4)(images)  # 4×2×2 outputs, 4·4·3 inputs each
    tokens = keras.layers.Reshape((4, 16))(patches)
    hidden = keras.layers.Dense(32)(tokens)  # 4·4 tokens, 16 → 32
    hidden = keras.layers.EinsumDense("btd,de->bte", output_shape=(4, 8))(hidden)  # 32 → 8
    scores = keras.layers.Lambda(lambda h: tf.matmul(h, h, transpose_b=True))(hidden)  # 4 × (4×8 · 8×4)
    model = keras.Model(images, scores)
    expected = 2 * (4 * 2 * 2 * 16 * 4 * 4 * 3 + 4 * 4 * 16 * 32 + 4 * 4 * 32 * 8 + 4 * 4 * 8 * 4)
    assert forward_flops(lambda x: model(x), tf.TensorSpec([4, 8, 8, 3])) == expected
    with pytest.raises(ValueError, match="shapes must be fixed"):
        forward_flops(lambda x: model(x), tf.TensorSpec([None, 8, 8, 3]))


def test_the_ceiling_is_the_best_rate_of_the_precision():
    rates = {"TensorFlow float32 8×8×8": 10.0, "NumPy float32 8×8×8": 12.0, "PyTorch bfloat16 8×8×8": 30.0,
             "TensorFlow bfloat16 8×8×8": 20.0}
    assert ceiling(rates, "float32") == 12.0 and ceiling(rates, "bfloat16") == 30.0
