import keras
import numpy as np
import pytest

from tfmm.encoders import build_image_encoder, build_text_encoder
from tfmm.layers import build_fusion
from tfmm.models import VisualQuestionAnswerer
from tfmm.testing import assert_keras_round_trip

RNG = np.random.default_rng(0)


def tiny_answerer(fusion="co_attention", frames=0, dtype=None):
    return VisualQuestionAnswerer(
        build_image_encoder("cnn", "tiny", 16, dtype=dtype), build_text_encoder("transformer", "tiny", 40, 6, dtype=dtype),
        build_fusion(fusion, 16, num_outputs=4, num_heads=2, num_layers=1, dtype=dtype), ["yes", "no", "red", "circle"],
        frames=frames, classifier_hidden_dim=8, dtype=dtype,
    )


def inputs(batch=2, questions=3, frames=0):
    shape = (batch, frames, 16, 16, 3) if frames else (batch, 16, 16, 3)
    mask = np.ones((batch, questions, 6), "int32")
    mask[:, :, 4:] = 0
    return {"images": RNG.random(shape, dtype=np.float32), "token_ids": RNG.integers(5, 40, (batch, questions, 6)).astype("int32"),
            "padding_mask": mask}


@pytest.mark.parametrize("frames", [0, 3])
def test_grouped_questions_give_the_same_answers_as_one_pair_at_a_time(frames):
    model = tiny_answerer(frames=frames)
    x = inputs(frames=frames)
    grouped = np.asarray(model(x)["probabilities"])  # (2, 3, 4): each image encoded once for its 3 questions
    pairs = {"images": np.repeat(x["images"], 3, axis=0),
             "token_ids": x["token_ids"].reshape(6, 1, 6), "padding_mask": x["padding_mask"].reshape(6, 1, 6)}
    one_by_one = np.asarray(model(pairs)["probabilities"]).reshape(2, 3, 4)
    np.testing.assert_allclose(grouped, one_by_one, atol=1e-5)
    np.testing.assert_allclose(grouped.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("fusion,frames", [("co_attention", 0), ("late", 0), ("cross_attention", 3)])
def test_answerer_round_trips_through_keras_files(fusion, frames):
    model = tiny_answerer(fusion, frames)
    loaded = assert_keras_round_trip(model, inputs(frames=frames), atol=1e-5)
    assert loaded.answer_vocabulary == ["yes", "no", "red", "circle"] and loaded.frames == frames


def test_padding_questions_and_unknown_answers_carry_no_loss():
    model = tiny_answerer("concat")
    model.compile(optimizer="adam")
    x = inputs()
    answers = np.zeros((2, 3), "int32")
    weights = np.array([[1, 1, 0], [1, 0, 0]], "float32")
    base = model.compute_loss(x, answers, model(x), weights)
    other = answers.copy()
    other[weights == 0] = 3  # different targets where the weight is 0
    np.testing.assert_allclose(model.compute_loss(x, other, model(x), weights), base, rtol=1e-6)
    logits = np.asarray(model(x)["logits"])
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -(log_p[..., 0] * weights).sum() / weights.sum()
    np.testing.assert_allclose(base, expected, rtol=1e-4)


def test_mixed_precision_keeps_answers_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny_answerer(dtype="mixed_bfloat16")
        out = model(inputs())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out["logits"].dtype == "float32" and out["probabilities"].dtype == "float32"
    assert np.isfinite(np.asarray(out["probabilities"])).all()
