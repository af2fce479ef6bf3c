"""Exact match of an assistant's turns, LLaVA-eval style: every assistant turn is scored with the earlier turns fed
from the references (not from the model's own earlier answers), after lower-casing and stripping punctuation
(`tfmm.data.instructions.normalise_answer`); reported overall, per intent and per turn index."""

from collections import defaultdict

from tfmm.data.instructions import normalise_answer


def reference_prompts(conversations):
    """(conversation index, turn index, history, question, reference answer, intent) for every assistant turn: the
    history is the references' earlier turns."""
    for number, conversation in enumerate(conversations):
        for turn, ((question, answer), intent) in enumerate(zip(conversation.turns, conversation.intents)):
            yield number, turn, list(conversation.turns[:turn]), question, answer, intent


class ConversationScores:
    """Accumulates (prediction, reference, intent, turn index) and reports `exact_match`, `turns` (how many were
    scored), `intents` {intent: {"exact_match", "turns"}} and `turn_index` {index: {...}}."""

    def __init__(self):
        self.rows = []

    def add(self, predictions, references, intents, turn_indices):
        if not len(predictions) == len(references) == len(intents) == len(turn_indices):
            raise ValueError("predictions, references, intents and turn indices differ in length")
        for prediction, reference, intent, turn in zip(predictions, references, intents, turn_indices):
            self.rows.append((normalise_answer(prediction) == normalise_answer(reference), intent or "all", int(turn)))

    def result(self):
        if not self.rows:
            raise ValueError("no assistant turns were scored")

        def summary(hits):
            return {"exact_match": sum(hits) / len(hits), "turns": len(hits)}

        by_intent, by_turn = defaultdict(list), defaultdict(list)
        for hit, intent, turn in self.rows:
            by_intent[intent].append(hit)
            by_turn[turn].append(hit)
        return {**summary([hit for hit, _, _ in self.rows]),
                "intents": {intent: summary(hits) for intent, hits in sorted(by_intent.items())},
                "turn_index": {turn: summary(hits) for turn, hits in sorted(by_turn.items())}}


def evaluate_conversations(task, conversations, batch_size=128, progress=False):
    """Scores every assistant turn of `conversations` (each with the references' earlier turns) by exact match;
    `ConversationScores.result()` plus `examples` (turns) and `conversations`. `progress`: a progress bar."""
    from pathlib import Path

    import keras

    prompts = list(reference_prompts(conversations))
    bar = keras.utils.Progbar(len(prompts), unit_name="turn") if progress else None
    scores, images = ConversationScores(), {}
    for start in range(0, len(prompts), batch_size):
        rows = prompts[start:start + batch_size]
        for number, *_ in rows:
            if number not in images:
                images[number] = Path(conversations[number].image).read_bytes()
        replies = task.reply([images[r[0]] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                             batch_size=batch_size)
        scores.add(replies, [r[4] for r in rows], [r[5] for r in rows], [r[1] for r in rows])
        if bar:
            bar.update(min(start + batch_size, len(prompts)))
    return {**scores.result(), "examples": len(prompts), "conversations": len(conversations)}
