"""Classification over whole splits: accuracy, macro-F1, per-class precision and recall, with a modality removed."""

import numpy as np
import tensorflow as tf

from tfmm.errors import TfmmError


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


MISSING = ("none", "image", "text")


def evaluate_classifier(task, dataset, missing="none", batch_size=64):
    """Per task: accuracy, macro-F1 and per-class precision/recall over `dataset` (`{"image", "text",
    "labels": {task: name}}`). Labels the model does not know are reported and skipped.
    `missing="image"` / `"text"` removes that modality from every example (a black image, an empty text),
    as the model saw it under modality dropout."""
    if missing not in MISSING:
        raise TfmmError(f"missing must be one of {', '.join(MISSING)}, got {missing!r}")
    preprocessor, tasks = task.preprocessor, task.tasks

    def run(images, text, labels):
        if missing == "image":
            images = tf.zeros_like(images)
        if missing == "text":
            text = tf.fill(tf.shape(text), "")
        inputs, ids, weights = preprocessor({"images": images, "text": text}, labels)
        outputs = task(inputs, training=False)
        return {**{f"{t}_predicted": tf.argmax(outputs[f"{t}_probabilities"], -1) for t in tasks},
                **{f"{t}_true": ids[t] for t in tasks}, **{f"{t}_known": weights[t] for t in tasks}}

    forward = task.graph_function(f"evaluate_classifier/{missing}", run)
    true, predicted, unknown = ({t: [] for t in tasks} for _ in range(3))
    scored = 0
    for batch in dataset.batch(batch_size).prefetch(2):
        scored += int(batch["image"].shape[0])
        out = {k: v.numpy() for k, v in forward(batch["image"], batch["text"], batch["labels"]).items()}
        for t in tasks:
            known = out[f"{t}_known"] > 0
            unknown[t].append(int((~known).sum()))
            true[t].extend(out[f"{t}_true"][known])
            predicted[t].extend(out[f"{t}_predicted"][known])
    metrics = {"missing": missing, "examples": scored}
    for name, classes in tasks.items():
        if not true[name]:
            raise TfmmError(f"no example has a {name!r} label the model knows")
        metrics[name] = classification_metrics(true[name], predicted[name], classes)
        if sum(unknown[name]):
            metrics[name]["skipped_unknown_labels"] = sum(unknown[name])
            print(f"{name}: skipped {sum(unknown[name])} example(s) whose label the model never saw in training")
    return metrics


def summarize_classification(metrics):
    """The headline numbers of `evaluate_classifier`: per task accuracy, macro-F1 and examples."""
    flat = {key: value for key, value in metrics.items() if not isinstance(value, dict)}
    for name, scores in metrics.items():
        if isinstance(scores, dict):
            flat.update({f"{name}_accuracy": scores["accuracy"], f"{name}_macro_f1": scores["macro_f1"],
                         f"{name}_examples": scores["examples"]})
    return flat
