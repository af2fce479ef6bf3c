"""Export of a trained `ContrastiveRetriever`: TF Serving SavedModel with raw-input signatures, and TFLite encoders.

SavedModel signatures (`<base>/<name>/<version>/`):
- `embed_image` (`serving_default`): `image_bytes` string[n] (JPEG/PNG/...) → `embedding` float[n, d]
- `embed_text`: `text` string[n] → `embedding` float[n, d]
- `zero_shot`: `image_bytes` string[n], `class_names` string[c] → `probabilities` float[n, c], `label` string[n]
  (prompt-template ensembling: each class name is put in every template, embedded, averaged)
- `embed_image_tensors` / `embed_text_tensors`: the same tensors the TFLite models take, for parity checks.

Beside it, in the same version directory: `assets.extra/tfmm_config.toml` (the resolved config),
`assets.extra/vocabulary.txt`, and `tflite/{image,text}_encoder_{float32,dynamic_int8,int8}.tflite`
with `tflite/parity.json` (cosine similarity to the Keras embeddings on sample inputs).
"""

import numpy as np
import tensorflow as tf

from tfmm.export.saved_model import add_endpoint, task_archive, write_export
from tfmm.export.tflite import write_tflite_models


def _template_parts(templates):
    prefixes, suffixes = [], []
    for template in templates:
        prefix, suffix = template.split("{}")
        prefixes.append(prefix)
        suffixes.append(suffix)
    return prefixes, suffixes


def build_archive(retriever):
    backbone, preprocessor = retriever.backbone, retriever.preprocessor
    image_model, text_model = backbone.image_embedder(), backbone.text_embedder()
    size, length = backbone.image_size, backbone.sequence_length
    scale = tf.constant(float(retriever.head.scale()), tf.float32)
    prefixes, suffixes = (tf.constant(p) for p in _template_parts(retriever.templates))
    archive = task_archive(retriever, image_model, text_model)

    def embed_images(image_bytes):
        return image_model(preprocessor.convert_images(image_bytes), training=False)["embedding"]

    def embed_texts(text):
        return text_model(preprocessor.tokenize(text), training=False)["embedding"]

    def embed_image(image_bytes):
        return {"embedding": embed_images(image_bytes)}

    def embed_text(text):
        return {"embedding": embed_texts(text)}

    def zero_shot(image_bytes, class_names):
        tf.debugging.assert_positive(tf.size(class_names), message="class_names must not be empty")
        count, per_class = tf.size(class_names), tf.size(prefixes)
        names = tf.broadcast_to(class_names[:, None], [count, per_class])
        prompts = tf.strings.join([tf.broadcast_to(prefixes[None], [count, per_class]), names,
                                   tf.broadcast_to(suffixes[None], [count, per_class])])
        prompt_embeddings = tf.reshape(embed_texts(tf.reshape(prompts, [-1])), [count, per_class, -1])
        classes = tf.math.l2_normalize(tf.reduce_mean(prompt_embeddings, axis=1), axis=-1)
        logits = scale * tf.matmul(embed_images(image_bytes), classes, transpose_b=True)
        return {"probabilities": tf.nn.softmax(logits), "label": tf.gather(class_names, tf.argmax(logits, axis=-1))}

    def embed_image_tensors(images):
        return {"embedding": image_model(images, training=False)["embedding"]}

    def embed_text_tensors(token_ids, padding_mask):
        return {"embedding": text_model({"token_ids": token_ids, "padding_mask": padding_mask}, training=False)["embedding"]}

    image_bytes = tf.TensorSpec([None], tf.string, name="image_bytes")
    add_endpoint(archive, ["serving_default", "embed_image"], embed_image, [image_bytes])
    archive.add_endpoint("embed_text", embed_text, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    archive.add_endpoint("zero_shot", zero_shot,
                         input_signature=[image_bytes, tf.TensorSpec([None], tf.string, name="class_names")])
    archive.add_endpoint("embed_image_tensors", embed_image_tensors,
                         input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    archive.add_endpoint("embed_text_tensors", embed_text_tensors, input_signature=[
        tf.TensorSpec([None, length], tf.int32, name="token_ids"),
        tf.TensorSpec([None, length], tf.int32, name="padding_mask"),
    ])
    return archive


def _cosine(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.sum(a * b, axis=-1)


def write_tflite(retriever, sample_images, sample_tokens, out_dir, quantizations):
    """Converts both towers for each quantization; returns parity (min cosine to Keras) per file."""
    backbone = retriever.backbone
    size, length = backbone.image_size, backbone.sequence_length
    towers = {
        "image_encoder": (backbone.image_embedder(), [tf.TensorSpec([1, size, size, 3], tf.float32, name="images")],
                          {"images": sample_images}, "embedding"),
        "text_encoder": (backbone.text_embedder(), [tf.TensorSpec([1, length], tf.int32, name="token_ids"),
                                                    tf.TensorSpec([1, length], tf.int32, name="padding_mask")],
                         sample_tokens, "embedding"),
    }
    return write_tflite_models(towers, out_dir, quantizations,
                               lambda got, reference: {"min_cosine": float(_cosine(got, reference).min())})


def export_retriever(retriever, config, samples, base_dir, name, quantizations=()):
    """Writes the next version of `name` under `base_dir`; returns its directory.

    `samples` (real data: raw `images` and `texts`) calibrate int8 and check TFLite parity.
    """
    preprocessor = retriever.preprocessor
    images = preprocessor.convert_images(samples["images"]).numpy()
    tokens = preprocessor.tokenize_numpy(list(samples["texts"]))
    return write_export(
        base_dir, name, lambda: build_archive(retriever), config, preprocessor.vocabulary,
        write_tflite=(lambda folder: write_tflite(retriever, images, tokens, folder, quantizations)) if quantizations else None,
    )
