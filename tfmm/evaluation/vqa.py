"""VQA accuracy over every question of a split, per question type, with the most frequent confusions."""

import collections

import numpy as np

from tfmm.data.question_groups import pad_group
from tfmm.errors import TfmmError


def evaluate_vqa(task, groups, max_questions, batch_size=32):
    """`groups`: question groups (`{"image", "questions", "answers", "types", ...}`, `tfmm.data.question_groups`)
    of at most `max_questions` questions.
    Each image is encoded once with all its questions. Answers outside the model's vocabulary are
    reported and skipped; questions with no word the model knows are counted (they are still answered)."""
    batches = groups.map(lambda g: pad_group(g, max_questions)).batch(batch_size).prefetch(2)
    known = set(task.answer_vocabulary)
    preprocessor = task.preprocessor

    def run(images, questions):
        inputs = preprocessor({"images": images, "questions": questions})
        return {"probabilities": task(inputs, training=False)["probabilities"],
                "known_words": preprocessor.known_words(inputs["token_ids"])}

    forward = task.graph_function("evaluate_vqa", run)
    totals, correct, confusions, unknown_answers = (collections.Counter() for _ in range(4))
    unreadable = 0
    for batch in batches.as_numpy_iterator():
        out = forward(images=batch["image"], questions=batch["questions"])
        predicted, words = out["probabilities"].numpy().argmax(-1), out["known_words"].numpy()
        for i, j in zip(*np.nonzero(batch["real"])):
            truth, kind = batch["answers"][i, j].decode(), batch["types"][i, j].decode()
            if truth not in known:
                unknown_answers[truth] += 1
                continue
            guess = task.answer_vocabulary[predicted[i, j]]
            totals[kind] += 1
            correct[kind] += guess == truth
            if guess != truth:
                confusions[f"{truth} → {guess}"] += 1
            unreadable += words[i, j] == 0
    count = sum(totals.values())
    if count == 0:
        raise TfmmError("no question to evaluate: every answer is outside the model's answer vocabulary"
                        if unknown_answers else "no question to evaluate")
    metrics = {"accuracy": sum(correct.values()) / count, "questions": count, "examples": count}
    for kind in sorted(totals):
        metrics[f"accuracy_{kind.replace('/', '_')}"] = correct[kind] / totals[kind]
        metrics[f"questions_{kind.replace('/', '_')}"] = totals[kind]
    metrics["errors"] = count - sum(correct.values())
    metrics["top_confusions"] = ", ".join(f"{pair} ×{n}" for pair, n in confusions.most_common(5)) or "none"
    if unknown_answers:
        metrics["skipped_unknown_answers"] = sum(unknown_answers.values())
        print(f"skipped {sum(unknown_answers.values())} question(s) whose answer the model does not know: "
              + ", ".join(f"{a!r} ×{n}" for a, n in unknown_answers.most_common(5)))
    if unreadable:
        metrics["questions_without_known_words"] = int(unreadable)
    return metrics
