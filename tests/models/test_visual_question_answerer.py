import keras
import numpy as np
import pytest

from tfmm.errors import TfmmError
from tfmm.testing import check_keras_round_trip, tiny_tasks

QUESTIONS = np.array([["what color is the shape", "is there a green square", ""],
                      ["is there a red circle", "", ""]])
ANSWERS = np.array([["red", "no", ""], ["yes", "", ""]])
REAL = np.array([[1, 1, 0], [1, 0, 0]], np.float32)


def raw(frames=0):
    images = tiny_tasks.images(2 * max(frames, 1)).reshape((2, frames, 20, 20, 3) if frames else (2, 20, 20, 3))
    return {"images": images, "questions": QUESTIONS}


@pytest.mark.parametrize("frames", [0, 3])
def test_grouped_questions_give_the_same_answers_as_one_pair_at_a_time(frames):
    task = tiny_tasks.answerer("co_attention", frames=frames)
    x = task.preprocessor(raw(frames))
    grouped = np.asarray(task(x)["probabilities"])  # (2, 3, answers): each image encoded once for its questions
    pairs = {"images": np.repeat(np.asarray(x["images"]), 3, axis=0),
             "token_ids": np.asarray(x["token_ids"]).reshape(6, 1, -1),
             "padding_mask": np.asarray(x["padding_mask"]).reshape(6, 1, -1)}
    one_by_one = np.asarray(task(pairs)["probabilities"]).reshape(grouped.shape)
    np.testing.assert_allclose(grouped, one_by_one, atol=1e-5)
    np.testing.assert_allclose(grouped.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("fusion,frames", [("late", 0), ("cross_attention", 3)])
def test_answerer_round_trips_through_keras_files(fusion, frames):
    task = tiny_tasks.answerer(fusion, frames)
    loaded = check_keras_round_trip(task, task.preprocessor(raw(frames)))
    assert loaded.answer_vocabulary == ["yes", "no", "red", "circle"] and loaded.backbone.frames == frames


def test_preprocessor_maps_answers_and_weights_padding_and_unknown_answers_zero():
    task = tiny_tasks.answerer()
    answers = np.array([["red", "purple", ""], ["yes", "", ""]])
    _, ids, weights = task.preprocessor(raw(), answers, REAL)
    np.testing.assert_array_equal(ids, [[2, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(weights, [[1, 0, 0], [1, 0, 0]])  # "purple" is not an answer the model knows


def test_padding_questions_and_unknown_answers_carry_no_loss():
    task = tiny_tasks.answerer("concat")
    x = task.preprocessor(raw())
    answers = np.zeros((2, 3), "int32")
    base = task.compute_loss(x, answers, task(x), REAL)
    other = answers.copy()
    other[REAL == 0] = 3  # different targets where the weight is 0
    np.testing.assert_allclose(task.compute_loss(x, other, task(x), REAL), base, rtol=1e-6)
    logits = np.asarray(task(x)["logits"])
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(base, -(log_p[..., 0] * REAL).sum() / REAL.sum(), rtol=1e-4)


@pytest.mark.parametrize("questions,message", [(["  "], "question #0 is empty"), (["zzqx wvvk"], "has no word the model knows")])
def test_unreadable_questions_are_named(questions, message):
    with pytest.raises(TfmmError, match=message):
        tiny_tasks.answerer().answer(tiny_tasks.images(1), questions)


def test_mixed_precision_keeps_answers_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        task = tiny_tasks.answerer()
        out = task(task.preprocessor(raw()))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out["logits"].dtype == "float32" and out["probabilities"].dtype == "float32"
    assert np.isfinite(np.asarray(out["probabilities"])).all()
