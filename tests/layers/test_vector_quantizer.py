import numpy as np
import pytest
import tensorflow as tf

from tfmm.layers import VectorQuantizer
from tfmm.testing import assert_layer_round_trip


def test_nearest_code_straight_through_gradient_and_losses():
    layer = VectorQuantizer(8, 4, beta=0.25)
    z = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 3, 4)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        out = layer(z)
        total = tf.reduce_sum(out["quantized"])
    codebook = layer.codebook.numpy()
    flat = z.numpy().reshape(-1, 4)
    expected = ((flat[:, None] - codebook[None]) ** 2).sum(-1).argmin(-1)
    np.testing.assert_array_equal(out["indices"].numpy().reshape(-1), expected)
    np.testing.assert_allclose(out["quantized"].numpy().reshape(-1, 4), codebook[expected], atol=1e-6)
    np.testing.assert_allclose(tape.gradient(total, z).numpy(), 1.0)  # straight through
    squared = ((flat - codebook[expected]) ** 2).mean()
    assert [float(v) for v in layer.losses] == pytest.approx([0.25 * squared, squared], rel=1e-5)


def test_ema_moves_codes_to_their_vectors_and_restarts_dead_codes():
    layer = VectorQuantizer(4, 2, ema_decay=0.5, restart_threshold=0.5)
    z = tf.constant([[1.0, 1.0], [1.2, 0.8], [-3.0, 2.0]])
    layer(z)  # build
    layer.codebook.assign([[1.0, 0.9], [-2.0, 2.0], [50.0, 50.0], [60.0, 60.0]])
    layer.cluster_size.assign([1.0, 1.0, 0.1, 1.0])
    layer.code_sum.assign(layer.codebook.numpy() * layer.cluster_size.numpy()[:, None])
    layer(z, training=True)
    codebook = layer.codebook.numpy()
    assert np.linalg.norm(codebook[0] - [1.1, 0.9]) < np.linalg.norm([1.0, 0.9] - np.array([1.1, 0.9])) + 1e-6
    assert np.linalg.norm(codebook[1] - [-3.0, 2.0]) < 1.0  # pulled towards its only vector
    # Code 2 was dead (0.1 < 0.5): restarted on one of the batch's vectors.
    assert any(np.allclose(codebook[2], v) for v in z.numpy())
    assert len(layer.losses) == 1  # no codebook loss: the EMA learns the codebook


def test_round_trip():
    assert_layer_round_trip(VectorQuantizer(8, 4, ema_decay=0.9), tf.ones((1, 2, 2, 4)))
