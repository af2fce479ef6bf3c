"""Classification metrics over whole splits: accuracy, macro-F1, per-class precision and recall."""

import numpy as np


def classification_metrics(true, predicted, class_names):
    """`true`, `predicted`: class indices. Classes absent from both count in macro-F1 only when present
    in `true` (F1 of a class no one has is undefined, so it is left out of the mean)."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    if true.size == 0:
        raise ValueError("no examples to score")
    metrics = {"accuracy": float(np.mean(true == predicted)), "examples": int(true.size)}
    f1s, per_class = [], {}
    for index, name in enumerate(class_names):
        tp = int(np.sum((predicted == index) & (true == index)))
        predicted_count, true_count = int(np.sum(predicted == index)), int(np.sum(true == index))
        precision = tp / predicted_count if predicted_count else 0.0
        recall = tp / true_count if true_count else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if true_count:
            f1s.append(f1)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": true_count}
    metrics["macro_f1"] = float(np.mean(f1s)) if f1s else 0.0
    metrics["per_class"] = per_class
    return metrics
