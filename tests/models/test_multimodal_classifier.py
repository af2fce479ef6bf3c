import numpy as np
import pytest

from tfmm.testing import check_keras_round_trip, tiny_tasks

TASKS = {"main": ["a", "b", "c"], "aux": ["x", "y"]}
TEXTS = np.array(["the report mentions a yellow cross", "no purple triangle here", "a white shape", "a small red circle"])


def raw():
    return {"images": tiny_tasks.images(4), "text": TEXTS}


@pytest.mark.parametrize("fusion", ["late", "image_only"])
def test_every_task_gets_a_head_and_the_model_round_trips(fusion):
    task = tiny_tasks.classifier(fusion, TASKS)
    out = task(task.preprocessor(raw()))
    assert out["main_probabilities"].shape == (4, 3) and out["aux_probabilities"].shape == (4, 2)
    np.testing.assert_allclose(np.asarray(out["main_probabilities"]).sum(-1), 1.0, atol=1e-5)
    loaded = check_keras_round_trip(task, task.preprocessor(raw()))
    assert loaded.tasks == TASKS


def test_unknown_labels_get_weight_zero():
    task = tiny_tasks.classifier("concat", TASKS)
    _, ids, weights = task.preprocessor(raw(), {"main": np.array(["c", "zz", "a", "b"]), "aux": np.array(["y"] * 4)})
    np.testing.assert_array_equal(ids["main"], [2, 0, 0, 1])
    np.testing.assert_array_equal(weights["main"], [1, 0, 1, 1])


def cross_entropy(logits, labels, weights):
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -(log_p[np.arange(len(labels)), labels] * weights).sum() / weights.sum()


def test_static_and_uncertainty_weighted_losses_match_numpy():
    x = None
    y = {"main": np.array([0, 1, 2, 0]), "aux": np.array([1, 0, 1, 1])}
    w = {"main": np.array([1, 1, 1, 0], "float32"), "aux": np.ones(4, "float32")}
    static = tiny_tasks.classifier("gated", TASKS, loss_weights={"main": 1.0, "aux": 0.5})
    x = static.preprocessor(raw())
    out = {k: np.asarray(v) for k, v in static(x).items()}
    expected = cross_entropy(out["main"], y["main"], w["main"]) + 0.5 * cross_entropy(out["aux"], y["aux"], w["aux"])
    np.testing.assert_allclose(static.compute_loss(x, y, static(x), w), expected, rtol=1e-4)
    learned = tiny_tasks.classifier("gated", TASKS, loss_weighting="uncertainty")
    learned.log_variances.assign([0.5, -1.0])
    out = {k: np.asarray(v) for k, v in learned(x).items()}
    expected = (np.exp(-0.5) * cross_entropy(out["main"], y["main"], w["main"]) + 0.5
                + np.exp(1.0) * cross_entropy(out["aux"], y["aux"], w["aux"]) - 1.0)
    np.testing.assert_allclose(learned.compute_loss(x, y, learned(x), w), expected, rtol=1e-4)
    assert learned.task_weights() == pytest.approx({"main": np.exp(-0.5), "aux": np.exp(1.0)})


def test_late_fusion_keeps_task_heads_linear():
    late = tiny_tasks.classifier("late", TASKS)
    assert all(not layer.name.endswith("_hidden") for layer in late.layers)
    assert "main_hidden" in [layer.name for layer in tiny_tasks.classifier("concat", TASKS).layers]
