"""Referring-segmentation metrics (the RefCOCO family's, plus no-target accuracy as in gRefCOCO).

For expressions that name something: mean IoU over expressions, overall (cumulative) IoU = total
intersection / total union, and precision at IoU 0.5 / 0.7 / 0.9 (share of expressions at or above it).
For expressions that name nothing: no-target accuracy, the share whose predicted mask is empty.
Every figure also per expression kind.
"""

import numpy as np

THRESHOLDS = (0.5, 0.7, 0.9)


def _summary(intersections, unions, empty_predictions, with_target):
    ious = intersections[with_target] / np.maximum(unions[with_target], 1)
    result = {"expressions": int(len(with_target)), "with_target": int(with_target.sum())}
    if with_target.any():
        result["miou"] = float(ious.mean())
        result["overall_iou"] = float(intersections[with_target].sum() / max(unions[with_target].sum(), 1))
        for t in THRESHOLDS:
            result[f"precision@{t}"] = float((ious >= t).mean())
    if (~with_target).any():
        result["no_target_accuracy"] = float(empty_predictions[~with_target].mean())
    return result


class SegmentationScores:
    """Accumulates predicted and reference masks (bool or 0/1, (N, H, W)) with each expression's kind."""

    def __init__(self):
        self.intersections, self.unions, self.empty, self.has_target, self.kinds = [], [], [], [], []

    def add(self, predicted, reference, kinds):
        predicted = np.asarray(predicted).astype(bool)
        reference = np.asarray(reference).astype(bool)
        if predicted.shape != reference.shape:
            raise ValueError(f"predicted masks {predicted.shape} and reference masks {reference.shape} differ in shape")
        axes = tuple(range(1, predicted.ndim))
        self.intersections.append((predicted & reference).sum(axes))
        self.unions.append((predicted | reference).sum(axes))
        self.empty.append(~predicted.any(axes))
        self.has_target.append(reference.any(axes))
        self.kinds.extend(str(k) for k in kinds)

    def result(self):
        """{"miou", "overall_iou", "precision@t", "no_target_accuracy", "expressions", "examples", "kinds": {...}}"""
        if not self.kinds:
            raise ValueError("no expressions were scored")
        parts = [np.concatenate(p) for p in (self.intersections, self.unions, self.empty, self.has_target)]
        intersections, unions = (p.astype(np.float64) for p in parts[:2])
        empty, has_target = parts[2], parts[3]
        kinds = np.array(self.kinds)
        result = _summary(intersections, unions, empty, has_target)
        result["examples"] = result["expressions"]
        result["kinds"] = {kind: _summary(intersections[kinds == kind], unions[kinds == kind], empty[kinds == kind],
                                          has_target[kinds == kind]) for kind in sorted(set(self.kinds))}
        return result
