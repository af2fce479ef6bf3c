import numpy as np
import pytest

from tfmm.evaluation.segmentation import SegmentationScores


def test_scores_match_a_hand_count_and_split_by_kind():
    reference = np.zeros((4, 4, 4), bool)
    reference[0, :2, :2] = True  # 4 pixels
    reference[1, :, :] = True  # 16 pixels
    # 2 and 3: no target
    predicted = np.zeros_like(reference)
    predicted[0, :2, :1] = True  # IoU 2/4
    predicted[1, :, :] = True  # IoU 1
    predicted[3, 0, 0] = True  # a no-target expression with a pixel marked: wrong
    scores = SegmentationScores()
    scores.add(predicted[:2], reference[:2], ["attribute", "multiple"])
    scores.add(predicted[2:], reference[2:], ["no_target", "no_target"])
    result = scores.result()
    assert result["miou"] == pytest.approx(0.75)
    assert result["overall_iou"] == pytest.approx((2 + 16) / (4 + 16))
    assert result["precision@0.5"] == 1.0 and result["precision@0.7"] == 0.5 and result["precision@0.9"] == 0.5
    assert result["no_target_accuracy"] == 0.5
    assert result["expressions"] == result["examples"] == 4 and result["with_target"] == 2
    assert result["kinds"]["attribute"]["miou"] == pytest.approx(0.5)
    assert result["kinds"]["no_target"] == {"expressions": 2, "with_target": 0, "no_target_accuracy": 0.5}


def test_random_masks_against_brute_force():
    rng = np.random.default_rng(0)
    reference = rng.random((30, 8, 8)) < 0.3
    reference[:5] = False
    predicted = rng.random((30, 8, 8)) < 0.3
    scores = SegmentationScores()
    scores.add(predicted, reference, ["k"] * 30)
    ious = [(p & r).sum() / (p | r).sum() for p, r in zip(predicted[5:], reference[5:])]
    result = scores.result()
    assert result["miou"] == pytest.approx(np.mean(ious))
    assert result["precision@0.5"] == pytest.approx(np.mean(np.array(ious) >= 0.5))
    assert result["no_target_accuracy"] == pytest.approx(np.mean([not p.any() for p in predicted[:5]]))


def test_mismatched_shapes_and_nothing_scored_are_errors():
    scores = SegmentationScores()
    with pytest.raises(ValueError, match=r"differ in shape"):
        scores.add(np.zeros((1, 4, 4)), np.zeros((1, 5, 5)), ["a"])
    with pytest.raises(ValueError, match="no expressions were scored"):
        scores.result()
