"""Exact match of assistant turns: the references' history feeds each turn, answers compared after normalising,
per intent and per turn index against counts done by hand."""

from pathlib import Path

import pytest

from tfmm.data.conversations import Conversation
from tfmm.evaluation.conversation import ConversationScores, reference_prompts


def test_every_turn_is_prompted_with_the_references_history():
    conversation = Conversation("0", Path("a.png"), (("q1", "a1"), ("q2", "a2"), ("q3", "a3")), ("count", "colour", ""))
    got = list(reference_prompts([conversation]))
    assert [(n, t, h, q, a, i) for n, t, h, q, a, i in got] == [
        (0, 0, [], "q1", "a1", "count"), (0, 1, [("q1", "a1")], "q2", "a2", "colour"),
        (0, 2, [("q1", "a1"), ("q2", "a2")], "q3", "a3", "")]


def test_exact_match_after_normalising_per_intent_and_turn():
    scores = ConversationScores()
    scores.add(["Red.", "two", "A small  red circle!", "no"], ["red", "three", "a small red circle", "yes, there is"],
               ["colour", "count", "describe", ""], [0, 0, 1, 1])
    result = scores.result()
    assert result["exact_match"] == 0.5 and result["turns"] == 4
    assert result["intents"] == {"all": {"exact_match": 0.0, "turns": 1}, "colour": {"exact_match": 1.0, "turns": 1},
                                 "count": {"exact_match": 0.0, "turns": 1}, "describe": {"exact_match": 1.0, "turns": 1}}
    assert result["turn_index"] == {0: {"exact_match": 0.5, "turns": 2}, 1: {"exact_match": 0.5, "turns": 2}}
    with pytest.raises(ValueError, match="differ in length"):
        scores.add(["a"], ["a", "b"], ["x"], [0])
    with pytest.raises(ValueError, match="no assistant turns"):
        ConversationScores().result()
