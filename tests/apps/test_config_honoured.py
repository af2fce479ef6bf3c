"""A setting an app cannot honour is refused with the app's name and the reason, from --set or a config file;
the augmentation each app does honour reaches its training batches."""

import argparse

import numpy as np
import pytest
import tensorflow as tf

from tfmm.apps.caption import Caption
from tfmm.apps.classify import Classify
from tfmm.apps.generate import Generate
from tfmm.apps.runner import Runner
from tfmm.apps.vqa import VQA
from tfmm.errors import TfmmError


def _args(*overrides, config=None):
    return argparse.Namespace(set=list(overrides), config=config)


@pytest.mark.parametrize("app,key,reason", [
    (Caption(), "data.text_augment.deletion", "captions are what the model learns to write"),
    (VQA(), "data.text_augment.swap", "a question's words say what is asked"),
    (Classify(), "data.text_augment.synonyms", "the report words carry the labels"),
    (Generate(), "data.text_augment.deletion", "a prompt without one of its words asks for something else"),
])
def test_refused_keys_name_the_app(app, key, reason):
    with pytest.raises(TfmmError, match=rf"^{key}: the {app.name} app cannot honour it \({reason}"):
        Runner(app).resolve_config(_args(f"{key}=0.1"))


def test_refused_keys_in_a_config_file_too(tmp_path):
    (tmp_path / "caption.toml").write_text("[data.text_augment]\nswap = 0.2\n")
    with pytest.raises(TfmmError, match="data.text_augment.swap: the caption app cannot honour it"):
        Runner(Caption()).resolve_config(_args(config=str(tmp_path / "caption.toml")))


def test_generate_takes_synonyms_in_its_prompts():
    config = Runner(Generate()).resolve_config(_args("data.text_augment.synonyms=true", "data.batch_size=4"))
    captions = ["a small red circle", "a large blue square"] * 4
    examples = tf.data.Dataset.from_tensor_slices({"captions": [[c] for c in captions],
                                                  "tokens": np.zeros((8, 4), np.int32)})
    config.data.text_dropout = 0.0
    batches = Generate().pipeline(config, examples, training=True)
    prompts = [p.decode() for b in batches.take(2) for p in b["prompts"].numpy()]
    assert any(w in p.split() for p in prompts for w in ("little", "tiny", "big", "huge"))
    assert {p.replace("little", "small").replace("tiny", "small").replace("big", "large").replace("huge", "large")
            for p in prompts} <= set(captions)  # only the synonyms change


def test_caption_training_images_are_augmented_and_evaluation_images_are_not():
    config = Runner(Caption()).resolve_config(_args("data.augment.flip=true", "data.batch_size=4"))
    images = np.stack([np.tile(np.arange(8, dtype=np.uint8)[None, :, None] * 30, (8, 1, 3))] * 8)
    examples = tf.data.Dataset.from_tensor_slices({"image": images, "captions": [["a gradient"]] * 8})
    train = np.concatenate([b["images"].numpy() for b in Caption().pipeline(config, examples, training=True).take(2)])
    assert any(np.array_equal(i, images[0][:, ::-1]) for i in train)
    evaluation = np.concatenate([b["images"].numpy() for b in Caption().pipeline(config, examples, training=False)])
    np.testing.assert_array_equal(evaluation, images)


@pytest.mark.parametrize("app", [Caption(), VQA(), Generate()])
def test_mixing_is_refused_where_there_are_no_class_labels(app):
    with pytest.raises(TfmmError, match=rf"data.augment.mixup: the {app.name} app cannot honour it \(mixing"):
        Runner(app).resolve_config(_args("data.augment.mixup=0.2"))


def test_generate_augments_the_images_its_vqvae_learns_from():
    from tfmm.apps.generate_stages import VQVAEStage

    config = Runner(Generate()).resolve_config(_args("data.augment.flip=true", "data.batch_size=4"))
    images = np.stack([np.tile(np.arange(8, dtype=np.uint8)[None, :, None] * 30, (8, 1, 3))] * 8)
    examples = tf.data.Dataset.from_tensor_slices({"image": images})
    train = np.concatenate([b["images"].numpy() for b in VQVAEStage().pipeline(config, examples, training=True).take(2)])
    assert any(np.array_equal(i, images[0][:, ::-1]) for i in train)
    validation = np.concatenate([b["images"].numpy() for b in VQVAEStage().pipeline(config, examples, training=False)])
    np.testing.assert_array_equal(validation, images)
