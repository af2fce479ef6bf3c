"""The export is checked the way TF Serving and phones use it: without tfmm."""

import numpy as np
import pytest
from PIL import Image

from tfmm.data import DataChecks
from tfmm.data.shapes import generate_example
from tfmm.evaluation.retrieval import split_arrays
from tfmm.export import TFLiteRunner, op_names
from tfmm.models import ContrastiveRetrieverPreprocessor
from tfmm.testing import check_in_fresh_process
from tfmm.text import WordPieceTokenizer

CLASSES = ["red circle", "blue square", "green star"]
TEXTS = ["a small red circle", "a large blue square left of a small green star"]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("png")
    for index in range(4):
        Image.fromarray(generate_example(0, "test", index, image_size=32)["image"]).save(folder / f"{index}.png")
    return [(folder / f"{index}.png").read_bytes() for index in range(4)]


def test_saved_model_serves_raw_inputs_as_the_preset_does(trained_run, exported, encoded, tmp_path):
    task = trained_run.task
    served = check_in_fresh_process(
        {"retrieval": (task, "task.zero_shot(inputs['images'], inputs['classes'])['labels']",
                       {"images": encoded, "classes": CLASSES})},
        tmp_path, exported, {
            "embed_image": {"image_bytes": np.array(encoded, dtype=object)},
            "serving_default": {"image_bytes": np.array(encoded, dtype=object)},
            "embed_text": {"text": np.array(TEXTS, dtype=object)},
            "zero_shot": {"image_bytes": np.array(encoded, dtype=object), "class_names": np.array(CLASSES, dtype=object)},
        })
    np.testing.assert_allclose(served["embed_image"]["embedding"], task.embed_images(encoded), atol=1e-5)
    np.testing.assert_allclose(served["serving_default"]["embedding"], served["embed_image"]["embedding"])
    np.testing.assert_allclose(served["embed_text"]["embedding"], task.embed_texts(TEXTS), atol=1e-5)
    expected = task.zero_shot(encoded, CLASSES)
    np.testing.assert_allclose(served["zero_shot"]["probabilities"], expected["probabilities"], atol=1e-4)
    assert served["zero_shot"]["label"] == expected["labels"]


def test_export_carries_config_and_vocabulary(exported, trained_run):
    assert (exported / "assets.extra" / "tfmm_config.toml").is_file()
    vocabulary = (exported / "tflite" / "vocabulary.txt").read_text().splitlines()
    assert vocabulary == trained_run.task.preprocessor.vocabulary


@pytest.mark.parametrize("quantization,threshold", [("float32", 0.999), ("dynamic_int8", 0.98), ("int8", 0.98)])
def test_tflite_encoders_are_builtin_only_and_match_keras(exported, trained_run, quantization, threshold):
    images, _, _, captions, _ = split_arrays(trained_run.runner.app.load_split(trained_run.config, "test", DataChecks()).take(12))
    # Host-side tokenisation from the exported vocabulary, as a phone app would do it.
    vocabulary = (exported / "tflite" / "vocabulary.txt").read_text().splitlines()
    host = ContrastiveRetrieverPreprocessor(WordPieceTokenizer(vocabulary), sequence_length=trained_run.config.model.sequence_length)
    task = trained_run.task
    checks = {
        "image_encoder": ({"images": images.astype("float32") / 255.0}, task.embed_images(images)),
        "text_encoder": (host.tokenize_numpy(captions[:12]), task.embed_texts(captions[:12])),
    }
    for tower, (inputs, reference) in checks.items():
        path = exported / "tflite" / f"{tower}_{quantization}.tflite"
        assert not [op for op in op_names(path) if op.startswith("Flex")]
        got = TFLiteRunner(path)(**inputs)["embedding"]
        cosine = np.sum(got * reference, -1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(reference, axis=-1)
        assert cosine.min() >= threshold, (tower, quantization, cosine.min())
