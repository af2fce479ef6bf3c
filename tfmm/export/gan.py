"""Export of a trained text-to-image GAN, with the token model's `generate` signature so a client serves either.

SavedModel signatures (`<base>/<name>/<version>/`):
- `generate` (`serving_default`): `prompt` string[n], `seed` int64, `temperature` float32 (scales the noise),
  `top_k` int32 (must be 0: a GAN draws no tokens) → `png` string[n], `tokens` int32[n, 0, 0] (empty: kept so
  the outputs match the token model's) and `known_words` int32[n].
An empty prompt, temperature ≤ 0 or top_k ≠ 0 fail the request with a message naming the value.

`tflite/gan_generator_<q>.tflite`: `text_ids`, `padding_mask` (1, L) int32 and `noise` (1, noise_dim) float32
→ `images` (1, S, S, 3) in 0..1, built-in ops only (tokenize with the vocabulary in `assets.extra`), with
`parity.json` (pixels within 8/255 of Keras on the sample prompts).
"""

import numpy as np
import tensorflow as tf

from tfmm.export.generator import _pixel_parity, _png, _prompt_tokens
from tfmm.export.saved_model import add_endpoint, task_archive, write_export
from tfmm.export.tflite import write_tflite_models
from tfmm.models.text_to_image_gan import draw_noise


def build_archive(model):
    preprocessor = model.preprocessor
    archive = task_archive(model, model.backbone)  # the discriminator stays out of the export

    def generate(prompt, seed, temperature, top_k):
        checks = [tf.debugging.Assert(temperature > 0, ["temperature must be above 0, got", temperature]),
                  tf.debugging.Assert(tf.equal(top_k, 0), ["top_k must be 0 (the GAN draws no tokens), got", top_k])]
        tokens = _prompt_tokens(preprocessor, prompt, checks)
        text_ids = tokens["token_ids"]
        images = model.images_tensor(text_ids, tokens["padding_mask"], tf.stack([seed, tf.constant(1, tf.int64)]), temperature)
        return {"png": _png(images), "tokens": tf.zeros([tf.shape(text_ids)[0], 0, 0], tf.int32),
                "known_words": preprocessor.known_words(text_ids)}

    add_endpoint(archive, ["serving_default", "generate"], generate,
                 [tf.TensorSpec([None], tf.string, name="prompt"), tf.TensorSpec([], tf.int64, name="seed"),
                  tf.TensorSpec([], tf.float32, name="temperature"), tf.TensorSpec([], tf.int32, name="top_k")])
    return archive


def export_gan(model, config, samples, base_dir, name, quantizations=()):
    """Writes the next version of `name`; `samples["prompts"]` with fixed noise check the TFLite generator's parity."""
    backbone = model.backbone

    def write_tflite(folder):
        tokens = model.preprocessor.tokenize_numpy(samples["prompts"])
        inputs = {"text_ids": tokens["token_ids"], "padding_mask": tokens["padding_mask"],
                  "noise": draw_noise(len(samples["prompts"]), backbone.noise_dim, (0, 1), 1.0).numpy()}
        specs = [tf.TensorSpec([1, backbone.sequence_length], tf.int32, name="text_ids"),
                 tf.TensorSpec([1, backbone.sequence_length], tf.int32, name="padding_mask"),
                 tf.TensorSpec([1, backbone.noise_dim], tf.float32, name="noise")]
        write_tflite_models({"gan_generator": (backbone, specs, {k: np.asarray(v) for k, v in inputs.items()}, "images")},
                            folder, [q for q in quantizations if q != "int8"], _pixel_parity)

    return write_export(base_dir, name, lambda: build_archive(model), config, model.preprocessor.vocabulary, {},
                        write_tflite if quantizations else None)
