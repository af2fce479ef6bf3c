import pytest

from tfmm.evaluation import caption as captioning
from tfmm.evaluation.caption import caption_metrics, named_objects, names_every_object, object_correctness

COLOURS, SHAPES = ("red", "blue", "green"), ("circle", "square", "star")
REFERENCES = {1: ["a small red circle", "there is a small red circle"],
              2: ["a blue square left of a green star", "a green star right of a blue square"]}


def test_a_caption_equal_to_a_reference_scores_full_marks_and_a_wrong_one_does_not():
    perfect = caption_metrics(REFERENCES, {1: "a small red circle", 2: "a blue square left of a green star"})
    wrong = caption_metrics(REFERENCES, {1: "a large green star", 2: "a red circle"})
    assert perfect["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["rouge_l"] == pytest.approx(1.0)
    for key in ("bleu_1", "bleu_4", "rouge_l", "cider_d"):
        assert wrong[key] < perfect[key], key
    if captioning.java_available():
        assert perfect["meteor"] > wrong["meteor"]
    else:
        print("METEOR not checked: no Java on this machine")


def test_python_tokenisation_scores_like_the_ptb_tokenizer_on_plain_captions(monkeypatch):
    hypotheses = {1: "A small red circle.", 2: "a blue square, left of a star"}
    reference = caption_metrics(REFERENCES, hypotheses)
    monkeypatch.setattr(captioning, "java_available", lambda: False)
    fallback = caption_metrics(REFERENCES, hypotheses)
    assert "meteor" not in fallback
    for key in ("bleu_4", "rouge_l", "cider_d"):
        assert fallback[key] == pytest.approx(reference[key], abs=1e-6), key


def test_empty_captions_score_zero_instead_of_failing():
    metrics = caption_metrics(REFERENCES, {1: "", 2: "a blue square left of a green star"})
    assert 0 < metrics["bleu_1"] < 1


def test_object_check_wants_every_object_with_its_colour_and_shape():
    assert named_objects("a large Blue square left of a green star", COLOURS, SHAPES) == ["blue square", "green star"]
    assert names_every_object("a green star right of a small blue square", "blue square|green star", COLOURS, SHAPES)
    assert not names_every_object("a blue square", "blue square|green star", COLOURS, SHAPES)  # one missing
    assert not names_every_object("a red square left of a green star", "blue square|green star", COLOURS, SHAPES)
    assert not names_every_object("a blue square, a green star and a red circle", "blue square|green star", COLOURS,
                                  SHAPES)  # one invented
    share, mistakes = object_correctness(["a red circle", "a blue circle"], ["red circle", "red circle"], COLOURS, SHAPES)
    assert share == 0.5 and mistakes == {"red circle → blue circle": 1}
