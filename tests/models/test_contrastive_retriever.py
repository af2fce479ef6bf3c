import io

import numpy as np
import pytest
from PIL import Image

from tfmm.errors import TfmmError
from tfmm.testing import check_keras_round_trip, tiny_tasks

TEXTS = ["a small red circle", "is there a green square", "a white shape", "no purple triangle"]


def png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_embeddings_are_unit_vectors_and_the_towers_agree_with_the_pair_model():
    task = tiny_tasks.retriever()
    x = task.preprocessor({"images": tiny_tasks.images(4), "text": np.array(TEXTS)})
    out = task(x)
    for key in ("image_embedding", "text_embedding"):
        np.testing.assert_allclose(np.linalg.norm(out[key], axis=-1), np.ones(4), rtol=1e-5)
    np.testing.assert_allclose(task.embed_images(tiny_tasks.images(4)), out["image_embedding"], atol=1e-6)
    np.testing.assert_allclose(task.embed_texts(TEXTS), out["text_embedding"], atol=1e-6)


def test_bytes_and_pixels_of_one_image_give_one_embedding():
    task = tiny_tasks.retriever()
    pixels = tiny_tasks.images(2, size=16)
    np.testing.assert_allclose(task.embed_images([png(p) for p in pixels]), task.embed_images(pixels), atol=1e-6)


def test_zero_shot_averages_templates_into_one_classifier_per_class():
    task = tiny_tasks.retriever()
    classes, templates = ["red circle", "blue star", "white cross"], ["a {}", "just a {}"]
    result = task.zero_shot(tiny_tasks.images(5), classes, templates)
    prompts = task.embed_texts([t.replace("{}", c) for c in classes for t in templates]).reshape(3, 2, -1).mean(1)
    prompts /= np.linalg.norm(prompts, axis=-1, keepdims=True)
    logits = float(task.head.scale()) * task.embed_images(tiny_tasks.images(5)) @ prompts.T
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(result["probabilities"], expected / expected.sum(-1, keepdims=True), atol=1e-5)
    assert result["labels"] == [classes[i] for i in logits.argmax(-1)]


@pytest.mark.parametrize("call,message", [
    (lambda t: t.embed_images(np.zeros((2, 16, 16, 3), np.float32)), "uint8 pixels"),
    (lambda t: t.embed_images("photo.png"), "got str"),
    (lambda t: t.embed_texts(["a red circle", "  "]), "text #1 is empty"),
    (lambda t: t.zero_shot(tiny_tasks.images(1), ["red circle"], ["no placeholder"]), "must contain '{}'"),
])
def test_bad_raw_inputs_are_named(call, message):
    with pytest.raises(TfmmError, match=message):
        call(tiny_tasks.retriever())


def test_the_learnt_temperature_round_trips():
    task = tiny_tasks.retriever()
    task.head.log_scale.assign(2.0)
    loaded = check_keras_round_trip(task, task.preprocessor({"images": tiny_tasks.images(2), "text": np.array(TEXTS[:2])}))
    assert float(loaded.head.log_scale.numpy()) == 2.0


def test_a_model_built_in_mixed_bfloat16_saves_a_preset_that_loads_back_in_float32(tmp_path):
    # keras-hub cannot read a "mixed_bfloat16" policy back from a preset's config: save_preset writes float32
    import keras

    from tfmm.models.presets import from_preset, save_preset

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        task = tiny_tasks.retriever()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert task.backbone.dtype_policy.name == "mixed_bfloat16"
    back = from_preset(save_preset(task, tmp_path / "preset"))
    assert back.dtype_policy.name == "float32" and back.backbone.dtype_policy.name == "float32"
    for mine, theirs in zip(task.backbone.weights, back.backbone.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert "mixed_" not in (tmp_path / "preset" / "task.json").read_text()
