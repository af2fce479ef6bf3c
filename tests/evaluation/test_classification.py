import pytest

from tfmm.evaluation import classification_metrics


def test_accuracy_macro_f1_and_per_class_scores():
    true = [0, 0, 1, 1, 2, 2]
    predicted = [0, 1, 1, 1, 0, 2]
    metrics = classification_metrics(true, predicted, ["a", "b", "c", "unseen"])
    assert metrics["accuracy"] == pytest.approx(4 / 6) and metrics["examples"] == 6
    a, b, c = (metrics["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"]) == (0.5, 0.5)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1.0 and b["f1"] == pytest.approx(0.8)
    assert (c["precision"], c["recall"], c["f1"]) == (1.0, 0.5, pytest.approx(2 / 3))
    # A class nobody has (support 0) stays out of the macro mean.
    assert metrics["per_class"]["unseen"]["support"] == 0
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
