"""Export of a trained text-to-image model: the sampling loop in a SavedModel, and the VQ-VAE decoder as TFLite.

SavedModel signatures (`<base>/<name>/<version>/`):
- `generate` (`serving_default`): `prompt` string[n], `seed` int64, `temperature` float32, `top_k` int32
  (scalars; top_k 0 keeps every code, as everywhere in tfmm) → `png` string[n] (encoded PNG images), `tokens` int32[n, g, g] and
  `known_words` int32[n] (0: the prompt has no word the model knows; the image then follows no text).
  Classifier-free guidance and top-p are the model's (`generation.guidance_scale`, `sampling.top_p` at training).
- `encode`: `image_bytes` string[n] → `tokens` int32[n, g, g]; `decode`: `tokens` → `png` string[n]
  and `images` float32[n, S, S, 3].
An empty prompt, temperature ≤ 0 or top_k < 0 fail the request with a message naming the value.

`tflite/vqvae_decoder_<q>.tflite`: token grid (1, g, g) int32 → image (1, S, S, 3), built-in ops only,
with `parity.json` (largest pixel difference to Keras on sample token grids).
"""

import keras
import numpy as np
import tensorflow as tf

from tfmm.export.saved_model import add_endpoint, task_archive, write_export
from tfmm.export.tflite import write_tflite_models
from tfmm.models.vqvae import to_uint8


def _png(images):
    return tf.map_fn(tf.io.encode_png, to_uint8(images), fn_output_signature=tf.string)


def build_archive(model):
    preprocessor, vqvae = model.preprocessor, model.vqvae
    grid = vqvae.grid_size
    archive = task_archive(model)

    def generate(prompt, seed, temperature, top_k):
        checks = [
            tf.debugging.Assert(tf.reduce_all(tf.strings.length(tf.strings.strip(prompt)) > 0),
                                ["a prompt is empty: prompts", prompt]),
            tf.debugging.Assert(temperature > 0, ["temperature must be above 0, got", temperature]),
            tf.debugging.Assert(top_k >= 0, ["top_k must be 0 (every code) or more, got", top_k]),
        ]
        with tf.control_dependencies(checks):
            text_ids = tf.identity(preprocessor({"prompts": prompt})["text_ids"])
        tokens = model.sample_ids(text_ids, model.guidance_scale, temperature, top_k, model.sampling.top_p,
                                  tf.stack([seed, tf.constant(1, tf.int64)]))
        tokens = tf.reshape(tokens, [-1, grid, grid])
        return {"png": _png(vqvae.decode(tokens)), "tokens": tokens, "known_words": preprocessor.known_words(text_ids)}

    def encode(image_bytes):
        return {"tokens": vqvae.encode(preprocessor.convert_images(image_bytes))}

    def decode(tokens):
        tf.debugging.assert_less(tokens, vqvae.num_codes, message="token ids must be below the codebook size")
        images = vqvae.decode(tokens)
        return {"png": _png(images), "images": images}

    inputs = [tf.TensorSpec([None], tf.string, name="prompt"), tf.TensorSpec([], tf.int64, name="seed"),
              tf.TensorSpec([], tf.float32, name="temperature"), tf.TensorSpec([], tf.int32, name="top_k")]
    add_endpoint(archive, ["serving_default", "generate"], generate, inputs)
    archive.add_endpoint("encode", encode, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint("decode", decode, input_signature=[tf.TensorSpec([None, grid, grid], tf.int32, name="tokens")])
    return archive


def token_decoder(vqvae):
    """A Keras model token grid → image: the codebook as an embedding table, then the VQ-VAE decoder."""
    grid = vqvae.grid_size
    tokens = keras.Input((grid, grid), dtype="int32", name="tokens")
    lookup = keras.layers.Embedding(vqvae.num_codes, vqvae.code_dim, name="codebook")
    images = vqvae.decoder(lookup(tokens))
    model = keras.Model(tokens, {"images": images}, name="vqvae_decoder")
    lookup.set_weights([keras.ops.convert_to_numpy(vqvae.quantizer.codebook)])
    return model


def _pixel_parity(got, reference):
    return {"max_pixel_difference": float(np.abs(got - reference).max()),
            "mean_pixel_difference": float(np.abs(got - reference).mean())}


def export_generator(model, config, samples, base_dir, name, quantizations=()):
    """Writes the next version of `name`; the token grids of `samples` (raw `images`) check the TFLite
    decoder's parity."""
    vqvae, grid = model.vqvae, model.vqvae.grid_size
    sample_tokens = model.encode(samples["images"])

    def write_tflite(folder):
        decoder = token_decoder(vqvae)
        specs = [tf.TensorSpec([1, grid, grid], tf.int32, name="tokens")]
        write_tflite_models({"vqvae_decoder": (decoder, specs, {"tokens": np.asarray(sample_tokens, np.int32)}, "images")},
                            folder, [q for q in quantizations if q != "int8"], _pixel_parity)

    return write_export(base_dir, name, lambda: build_archive(model), config, model.preprocessor.vocabulary, {},
                        write_tflite if quantizations else None)
