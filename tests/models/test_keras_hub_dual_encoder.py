"""keras-hub CLIP / SigLIP presets in the retrieval app: tiny random-weight presets built here with keras-hub's
own classes stand in for the real ones (which cannot be downloaded on these machines)."""

import dataclasses

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfmm.apps import retrieval
from tfmm.encoders import parse_trainable
from tfmm.errors import TfmmError
from tfmm.models.keras_hub_dual_encoder import load_dual_encoder_preset, set_tower_trainable
from tfmm.testing import check_in_fresh_process, tiny_retrieval_config, train_app
from tfmm.testing.keras_hub_presets import IMAGE_SIZE, save_tiny_clip, save_tiny_siglip

PROMPTS = ["a red circle", "just the blue square", "a picture of a small green triangle"]


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_hub_presets")
    return {"clip": save_tiny_clip(folder / "clip"), "siglip": save_tiny_siglip(folder / "siglip")}


def _images(count=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_embeddings_and_zero_shot_match_keras_hubs_own_pipeline(presets, family):
    """Oracle: keras-hub's own preprocessor and backbone on the same images and prompts."""
    preset = load_dual_encoder_preset(presets[family])
    task = retrieval.KerasHubContrastiveRetriever(preset.backbone, preset.preprocessor, logit_scale_init=preset.logit_scale)
    images = _images()
    reference = keras_hub.models.Backbone.from_preset(str(presets[family]))
    preprocessor_cls = {"clip": keras_hub.models.CLIPPreprocessor, "siglip": keras_hub.models.SigLIPPreprocessor}[family]
    theirs = preprocessor_cls.from_preset(str(presets[family]))({"images": images.astype("float32"), "prompts": PROMPTS})
    expected_images = _unit(reference.get_vision_embeddings(theirs["images"]))
    expected_texts = _unit(reference.get_text_embeddings(theirs["token_ids"]))
    np.testing.assert_allclose(task.embed_images(images), expected_images, atol=2e-5)
    np.testing.assert_allclose(task.embed_texts(PROMPTS), expected_texts, atol=2e-5)
    # Zero-shot: softmax over the preset's scale × cosine to each class's template-averaged prompt embedding.
    classes = ["red circle", "blue square"]
    result = task.zero_shot(images, classes, templates=["a {}", "a picture of a {}"])
    prompts = [t.format(c) for c in classes for t in ("a {}", "a picture of a {}")]
    prompt_ids = preprocessor_cls.from_preset(str(presets[family]))({"images": images[:1].astype("float32"),
                                                                      "prompts": prompts})["token_ids"]
    class_vectors = _unit(_unit(reference.get_text_embeddings(prompt_ids)).reshape(2, 2, -1).mean(1))
    logits = preset.logit_scale * expected_images @ class_vectors.T
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(result["probabilities"], probabilities / probabilities.sum(-1, keepdims=True), atol=1e-4)


def test_siglip_cleans_text_as_its_preprocessor_does(presets):
    preprocessor = load_dual_encoder_preset(presets["siglip"]).preprocessor
    same = preprocessor.tokenize(["A Red, circle!", "a red circle"])["token_ids"].numpy()
    np.testing.assert_array_equal(same[0], same[1])
    assert same[0, -1] == preprocessor.tokenizer.end_token_id  # sticky end: SigLIP pools the last position


def _trainable_paths(backbone):
    return {v.path for v in backbone.trainable_variables}


def test_trainable_modes_pick_the_right_weights(presets):
    def fresh(image_mode, text_mode):
        backbone = load_dual_encoder_preset(presets["clip"]).backbone
        set_tower_trainable(backbone, "image", parse_trainable(image_mode, "image"))
        set_tower_trainable(backbone, "text", parse_trainable(text_mode, "text"))
        return backbone

    frozen = fresh("frozen", "frozen")
    assert not frozen.trainable_variables
    lora = fresh("lora-2", "frozen")
    # LoRA: adapters (and, as keras-hub's enable_lora leaves them, biases) of the vision attention queries
    # and values only: 2 blocks × 2 layers × (a, b, bias); the kernels themselves stay frozen.
    paths = _trainable_paths(lora)
    assert len(paths) == 12 and all("vision" in p and ("/query/" in p or "/value/" in p) for p in paths), paths
    assert sum("lora_kernel" in p for p in paths) == 8 and not any(p.endswith("/kernel") for p in paths)
    freeze = fresh("freeze-1", "frozen")
    paths = _trainable_paths(freeze)
    assert paths and not any("embedding" in p or "encoder_block_0" in p for p in paths), paths
    assert any("encoder_block_1" in p for p in paths) and any("vision_projection" in p for p in paths)
    top = fresh("full", "top-1")
    text_paths = {p for p in _trainable_paths(top) if "text" in p}
    assert text_paths and not any("encoder_block_0" in p or "embedding" in p for p in text_paths), text_paths
    with pytest.raises(TfmmError, match="freeze-3: .* has 2 transformer blocks"):
        fresh("freeze-3", "full")


def test_fine_tuned_preset_trains_what_it_says_exports_and_loads_alone(presets, tfds_dir, tmp_path):
    """The app fine-tunes a CLIP preset (LoRA on images, first text block frozen), saves a tfmm preset that
    loads in a fresh process, and exports SavedModel + TFLite whose embeddings match the task's."""
    config = tiny_retrieval_config(tfds_dir, tmp_path, epochs=1)
    default_model = retrieval.RetrievalConfig().model
    config.model = dataclasses.replace(default_model, preset=str(presets["clip"]),
                                       image_encoder=dataclasses.replace(default_model.image_encoder, trainable="lora-2"),
                                       text_encoder=dataclasses.replace(default_model.text_encoder, trainable="freeze-1"))
    config.train.steps_per_epoch = 3
    config.export.tflite_quantization = ["float32"]  # int8 conversion is the export's own tests' business
    before = load_dual_encoder_preset(presets["clip"]).backbone
    run = train_app(retrieval.Retrieval(), config)
    after = run.task.backbone
    assert isinstance(run.task, retrieval.KerasHubContrastiveRetriever)
    weights = {v.path: v.numpy() for v in after.weights}
    for variable in before.weights:
        changed = not np.allclose(variable.numpy(), weights[variable.path])
        vision_attention = "vision" in variable.path and ("/query/" in variable.path or "/value/" in variable.path)
        frozen_text = "text_encoder" in variable.path and ("encoder_block_0" in variable.path or "embedding" in variable.path)
        if "vision" in variable.path and not vision_attention:
            assert not changed, variable.path  # outside LoRA's reach: untouched
        if vision_attention and variable.path.endswith("kernel"):
            assert changed, variable.path  # the adapters, merged into the kernels when the preset was saved
        if frozen_text:
            assert not changed, variable.path
    assert any(not np.allclose(v.numpy(), weights[v.path]) for v in before.weights if "encoder_block_1" in v.path
               and "text" in v.path)

    folder = run.runner.export(run.task, config)
    images = _images(3, seed=1)
    pngs = [tf.io.encode_png(i).numpy() for i in images]
    served = check_in_fresh_process(
        {"clip": (run.task, "np.round(task.embed_texts(inputs), 4)", PROMPTS)}, tmp_path / "fresh", folder,
        {"embed_text": {"text": PROMPTS}, "embed_image": {"image_bytes": pngs}})
    np.testing.assert_allclose(served["embed_text"]["embedding"], run.task.embed_texts(PROMPTS), atol=1e-4)
    np.testing.assert_allclose(served["embed_image"]["embedding"], run.task.embed_images(images), atol=1e-4)
    assert sorted(p.name for p in (folder / "tflite").glob("*_float32.tflite")) == [
        "image_encoder_float32.tflite", "text_encoder_float32.tflite"]


def test_siglip_sigmoid_fine_tuning_starts_from_the_presets_bias(presets, tfds_dir, tmp_path):
    config = tiny_retrieval_config(tfds_dir, tmp_path, epochs=1)
    default_model = retrieval.RetrievalConfig().model
    config.model = dataclasses.replace(default_model, preset=str(presets["siglip"]), loss=_sigmoid_options())
    app = retrieval.Retrieval()
    task = app.build_task(config, app.build_preprocessor(config, None))
    preset = load_dual_encoder_preset(presets["siglip"])
    assert task.head.logit_bias is not None and float(task.head.bias()) == pytest.approx(preset.logit_bias)
    batch = {"images": _images(4), "text": PROMPTS + ["a star"]}
    outputs = task(task.preprocessor(batch))
    image, text = np.asarray(outputs["image_embedding"], np.float64), np.asarray(outputs["text_embedding"], np.float64)
    logits = float(task.head.scale()) * image @ text.T + preset.logit_bias
    signs = 2 * np.eye(4) - 1
    expected = -np.mean(np.sum(-np.log1p(np.exp(-signs * logits)), axis=-1))
    assert float(task.compute_loss(y_pred=outputs)) == pytest.approx(expected, rel=1e-4)


def _sigmoid_options():
    from tfmm.losses import CONTRASTIVE_LOSSES

    return CONTRASTIVE_LOSSES.options("sigmoid", "model.loss")()


@pytest.mark.parametrize("override, message", [
    ("model.embedding_dim=64", "model.embedding_dim: set by model.preset"),
    ("model.image_encoder.name=vit", "model.image_encoder.name: set by model.preset"),
    ("model.sequence_length=40", "model.sequence_length: set by model.preset"),
])
def test_settings_a_preset_decides_are_refused(presets, override, message, capsys):
    code = retrieval.main(["zero-shot", "--set", f"model.preset={presets['clip']}", "--set", override])
    assert code == 2 and message in capsys.readouterr().err


def test_a_preset_that_is_not_clip_or_siglip_is_named(tmp_path, capsys):
    keras_hub.models.BertBackbone(vocabulary_size=10, num_layers=1, num_heads=1, hidden_dim=4, intermediate_dim=8,
                                  max_sequence_length=8).save_to_preset(str(tmp_path / "bert"))
    assert retrieval.main(["zero-shot", "--set", f"model.preset={tmp_path / 'bert'}"]) == 2
    assert "holds a keras_hub>BertBackbone; a CLIPBackbone or SigLIPBackbone preset is needed" in capsys.readouterr().err
    assert retrieval.main(["zero-shot", "--set", f"model.preset={tmp_path / 'missing'}"]) == 2
    assert "missing is not found" in capsys.readouterr().err
    assert retrieval.main(["zero-shot", "--set", "model.preset=clip_vit_base_patch16"]) == 2
    assert "tfmm downloads nothing at run time" in capsys.readouterr().err


def test_vit_preset_brings_its_own_normalisation(tmp_path):
    from tfmm.apps.model_parts import image_converter

    keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=1, hidden_dim=8,
                                 mlp_dim=16).save_to_preset(str(tmp_path / "vit"))
    keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=[0.5 / 255] * 3, offset=[-0.25] * 3).save_to_preset(
        str(tmp_path / "vit"))
    config = retrieval.RetrievalConfig()
    config.data.image_size = 32
    config.model.image_encoder = dataclasses.replace(config.model.image_encoder, weights=str(tmp_path / "vit"))
    converter = image_converter(config)
    pixels = np.full((1, config.data.image_size, config.data.image_size, 3), 200, np.uint8)
    np.testing.assert_allclose(converter(pixels).numpy(), 200 * 0.5 / 255 - 0.25, atol=1e-6)
    assert keras.ops.shape(converter(pixels))[1] == config.data.image_size


def test_a_preset_indexes_and_searches_without_training(presets, tmp_path, capsys):
    """index/search with `--set model.preset=...`: the keras-hub model as it is; search's scores are the cosine
    similarities of keras-hub's own embeddings."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    images = _images(3, seed=4)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index}.png")
    common = ["--set", f"model.preset={presets['clip']}"]
    assert retrieval.main(["index", *common, "--index", str(tmp_path / "i.npz"), "--images", str(folder)]) == 0
    out = tmp_path / "search.json"
    assert retrieval.main(["search", *common, "--index", str(tmp_path / "i.npz"), "--text", PROMPTS[0],
                           "--top-k", "3", "--output", str(out)]) == 0
    import json

    results = json.loads(out.read_text())["results"]
    reference = keras_hub.models.Backbone.from_preset(str(presets["clip"]))
    theirs = keras_hub.models.CLIPPreprocessor.from_preset(str(presets["clip"]))(
        {"images": images.astype("float32"), "prompts": PROMPTS[:1]})
    scores = (_unit(reference.get_text_embeddings(theirs["token_ids"])) @ _unit(
        reference.get_vision_embeddings(theirs["images"])).T)[0]
    expected = {str((folder / f"{i}.png").resolve()): scores[i] for i in range(3)}
    assert [r["match"] for r in results] == sorted(expected, key=lambda p: -expected[p])
    for row in results:
        assert row["score"] == pytest.approx(expected[row["match"]], abs=1e-4)
