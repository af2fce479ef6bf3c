import numpy as np
import pytest

from tfmm.encoders import build_image_encoder, build_text_encoder
from tfmm.layers import build_fusion
from tfmm.models import MultimodalClassifier
from tfmm.testing import assert_keras_round_trip

TASKS = {"main": ["a", "b", "c"], "aux": ["x", "y"]}


def classifier(fusion="gated", **kwargs):
    return MultimodalClassifier(build_image_encoder("cnn", "tiny", 16), build_text_encoder("gru", "tiny", 30, 6),
                                build_fusion(fusion, 8, num_outputs=8), TASKS, hidden_dim=8, **kwargs)


def inputs():
    rng = np.random.default_rng(0)
    return {"images": rng.random((4, 16, 16, 3), dtype=np.float32), "token_ids": rng.integers(5, 30, (4, 6)).astype("int32"),
            "padding_mask": np.ones((4, 6), "int32")}


@pytest.mark.parametrize("fusion", ["late", "co_attention"])
def test_every_task_gets_a_head_and_the_model_round_trips(fusion):
    model = classifier(fusion, loss_weighting="uncertainty")
    out = model(inputs())
    assert out["main_probabilities"].shape == (4, 3) and out["aux_probabilities"].shape == (4, 2)
    np.testing.assert_allclose(np.asarray(out["main_probabilities"]).sum(-1), 1.0, atol=1e-5)
    loaded = assert_keras_round_trip(model, inputs(), atol=1e-5)
    assert loaded.tasks == TASKS and loaded.loss_weighting == "uncertainty"


def cross_entropy(logits, labels, weights):
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -(log_p[np.arange(len(labels)), labels] * weights).sum() / weights.sum()


def test_static_and_uncertainty_weighted_losses_match_numpy():
    x = inputs()
    y = {"main": np.array([0, 1, 2, 0]), "aux": np.array([1, 0, 1, 1])}
    w = {"main": np.array([1, 1, 1, 0], "float32"), "aux": np.ones(4, "float32")}
    static = classifier(loss_weights={"main": 1.0, "aux": 0.5})
    out = {k: np.asarray(v) for k, v in static(x).items()}
    expected = cross_entropy(out["main"], y["main"], w["main"]) + 0.5 * cross_entropy(out["aux"], y["aux"], w["aux"])
    np.testing.assert_allclose(static.compute_loss(x, y, static(x), w), expected, rtol=1e-4)
    learned = classifier(loss_weighting="uncertainty")
    learned.log_variances.assign([0.5, -1.0])
    out = {k: np.asarray(v) for k, v in learned(x).items()}
    expected = (np.exp(-0.5) * cross_entropy(out["main"], y["main"], w["main"]) + 0.5
                + np.exp(1.0) * cross_entropy(out["aux"], y["aux"], w["aux"]) - 1.0)
    np.testing.assert_allclose(learned.compute_loss(x, y, learned(x), w), expected, rtol=1e-4)
    assert learned.task_weights() == pytest.approx({"main": np.exp(-0.5), "aux": np.exp(1.0)})


def test_late_fusion_keeps_task_heads_linear():
    late = classifier("late")
    assert all(not layer.name.endswith("_hidden") for layer in late.layers)
    assert "main_hidden" in [layer.name for layer in classifier("concat").layers]
