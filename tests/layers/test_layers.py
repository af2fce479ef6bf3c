import math

import numpy as np

from tfmm.layers import ContrastiveHead, ProjectionHead, TokenPooling
from tfmm.testing import assert_layer_round_trip


def test_token_pooling_matches_numpy():
    x = np.random.rand(2, 5, 3).astype("float32")
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], "int32")
    expected = np.stack([x[0, :2].mean(0), x[1].mean(0)])
    np.testing.assert_allclose(TokenPooling("mean")(x, mask), expected, rtol=1e-6)
    np.testing.assert_allclose(TokenPooling("first")(x), x[:, 0])
    assert_layer_round_trip(TokenPooling("mean"), x, mask)


def test_projection_head_outputs_unit_float32_vectors():
    head = ProjectionHead(8, hidden_dim=16, dtype="mixed_bfloat16")
    out = head(np.random.rand(4, 12).astype("float32"))
    assert out.dtype == "float32"
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.ones(4), rtol=1e-5)
    assert_layer_round_trip(ProjectionHead(8), np.random.rand(4, 12).astype("float32"))


def test_contrastive_head_scale_starts_at_init_and_is_clipped():
    head = ContrastiveHead(1 / 0.07, 100.0)
    head.build()
    a = np.eye(3, dtype="float32")
    np.testing.assert_allclose(head(a, a), np.eye(3) / 0.07, rtol=1e-5)
    head.log_scale.assign(math.log(1000.0))
    assert float(head.scale()) == 100.0
    assert_layer_round_trip(ContrastiveHead(), a, a)
