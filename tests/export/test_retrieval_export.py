"""The export is checked the way TF Serving and phones use it: without tfmm."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfmm.data import decode_and_resize, to_float
from tfmm.data.shapes import generate_example
from tfmm.export import TFLiteRunner, op_names

LOAD_WITHOUT_TFMM = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops, as tensorflow_model_server does
model = tf.saved_model.load(sys.argv[1])
images = tf.constant([open(p, "rb").read() for p in json.loads(sys.argv[2])])
texts = tf.constant(json.loads(sys.argv[3]))
classes = tf.constant(json.loads(sys.argv[4]))
out = {
    "image": model.signatures["embed_image"](image_bytes=images)["embedding"].numpy(),
    "default": model.signatures["serving_default"](image_bytes=images)["embedding"].numpy(),
    "text": model.signatures["embed_text"](text=texts)["embedding"].numpy(),
}
zero_shot = model.signatures["zero_shot"](image_bytes=images, class_names=classes)
out["probabilities"] = zero_shot["probabilities"].numpy()
out["label"] = zero_shot["label"].numpy().astype(str)
try:
    model.signatures["zero_shot"](image_bytes=images, class_names=tf.constant([], tf.string))
    out["empty_classes_error"] = ""
except tf.errors.InvalidArgumentError as error:
    out["empty_classes_error"] = error.message
assert not any(m == "tfmm" or m.startswith("tfmm.") for m in sys.modules), "tfmm was imported"
np.savez(sys.argv[5], **out)
"""

CLASSES = ["red circle", "blue square", "green star"]


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("png")
    paths = []
    for index in range(4):
        path = folder / f"{index}.png"
        Image.fromarray(generate_example(0, "test", index, image_size=32)["image"]).save(path)
        paths.append(str(path))
    return paths


def test_saved_model_serves_raw_inputs_without_tfmm(trained_run, exported, image_files, tmp_path):
    texts = ["a small red circle", "a large blue square left of a small green star"]
    result = tmp_path / "out.npz"
    subprocess.run([sys.executable, "-c", LOAD_WITHOUT_TFMM, str(exported), json.dumps(image_files), json.dumps(texts),
                    json.dumps(CLASSES), str(result)], check=True, timeout=300)
    got = np.load(result)
    images = np.stack([to_float(decode_and_resize(tf.io.read_file(p), 32)).numpy() for p in image_files])
    np.testing.assert_allclose(got["image"], trained_run.embed_images(images), atol=1e-5)
    np.testing.assert_allclose(got["default"], got["image"])
    np.testing.assert_allclose(got["text"], trained_run.embed_texts(texts), atol=1e-5)
    expected = trained_run.class_embeddings(CLASSES, trained_run.config.zero_shot.templates)
    logits = float(trained_run.model.head.scale()) * trained_run.embed_images(images) @ expected.T
    np.testing.assert_allclose(got["probabilities"], tf.nn.softmax(logits).numpy(), atol=1e-4)
    assert list(got["label"]) == [CLASSES[i] for i in logits.argmax(1)]
    assert "class_names must not be empty" in str(got["empty_classes_error"])


def test_export_carries_config_and_vocabulary(exported, trained_run):
    assert (exported / "assets.extra" / "tfmm_config.toml").is_file()
    vocabulary = (exported / "tflite" / "vocabulary.txt").read_text().splitlines()
    assert vocabulary == trained_run.preprocessor.vocabulary


@pytest.mark.parametrize("quantization,threshold", [("float32", 0.999), ("dynamic_int8", 0.98), ("int8", 0.98)])
def test_tflite_encoders_are_builtin_only_and_match_keras(exported, trained_run, quantization, threshold):
    from tfmm.apps.retrieval import split_arrays, examples
    from tfmm.data import ImageCheck
    from tfmm.text import TextPreprocessor

    images, _, _, captions, _ = split_arrays(examples(trained_run.config, "test", ImageCheck()).take(12))
    images = images.astype("float32") / 255.0
    # Host-side tokenisation from the exported vocabulary, as a phone app would do it.
    vocabulary = (exported / "tflite" / "vocabulary.txt").read_text().splitlines()
    tokens = TextPreprocessor(vocabulary, trained_run.config.model.sequence_length).tokenize_numpy(captions[:12])
    checks = {
        "image_encoder": (dict(images=images), trained_run.embed_images(images)),
        "text_encoder": (tokens, trained_run.embed_texts(captions[:12])),
    }
    for tower, (inputs, reference) in checks.items():
        path = exported / "tflite" / f"{tower}_{quantization}.tflite"
        assert not [op for op in op_names(path) if op.startswith("Flex")]
        got = TFLiteRunner(path)(**inputs)["embedding"]
        cosine = np.sum(got * reference, -1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(reference, axis=-1)
        assert cosine.min() >= threshold, (tower, quantization, cosine.min())
