"""Export of a trained text-to-image model: the sampling loop in a SavedModel, and the VQ-VAE decoder as TFLite.

SavedModel signatures (`<base>/<name>/<version>/`):
- `generate` (`serving_default`): `prompt` string[n], `seed` int64, `temperature` float32, `top_k` int32
  (scalars; top_k 0 keeps every code, as everywhere in tfmm) → `png` string[n] (encoded PNG images), `tokens` int32[n, g, g] and
  `known_words` int32[n] (0: the prompt has no word the model knows; the image then follows no text).
  Classifier-free guidance and top-p are the model's (`generation.guidance_scale`, `sampling.top_p` at training).
- `generate_guided`: the same with `guidance_scale` float32 (a scalar; 1 = off) chosen per request.
- `edit`: `image_bytes` string[n], `box` int32[4] (x0, y0, x1, y1 in pixels of the model's image size), `prompt`
  string[n], `seed`, `temperature`, `top_k`, `guidance_scale` → `png` string[n], `tokens`: the token cells that
  meet the box re-drawn for the prompt, the rest kept; of `generation.edit_candidates` drawings the most
  likely whole image is kept (as `TextToImageGenerator.edit`).
- `encode`: `image_bytes` string[n] → `tokens` int32[n, g, g]; `decode`: `tokens` → `png` string[n]
  and `images` float32[n, S, S, 3].
An empty prompt, temperature ≤ 0, top_k < 0, guidance_scale < 0 or a box outside the image fail the request with a message naming the value.

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


def _sampling_checks(temperature, top_k, guidance_scale):
    checks = [tf.debugging.Assert(temperature > 0, ["temperature must be above 0, got", temperature]),
              tf.debugging.Assert(top_k >= 0, ["top_k must be 0 (every code) or more, got", top_k])]
    if tf.is_tensor(guidance_scale):  # a request's value (the model's own was checked with its config)
        checks.append(tf.debugging.Assert(guidance_scale >= 0, ["guidance_scale must be 0 or more, got", guidance_scale]))
    return checks


def _prompt_tokens(preprocessor, prompt, checks):
    """`token_ids` and `padding_mask` of the prompts, after `checks` and a check that none is empty."""
    checks = [*checks, tf.debugging.Assert(tf.reduce_all(tf.strings.length(tf.strings.strip(prompt)) > 0),
                                           ["a prompt is empty: prompts", prompt])]
    with tf.control_dependencies(checks):
        return {key: tf.identity(value) for key, value in preprocessor.tokenize(prompt).items()}


def _edit_mask(box, size, grid):
    """(g, g) bool: the token cells that meet `box` (x0, y0, x1, y1 in pixels of the model's image size)."""
    box = tf.cast(box, tf.float32)
    starts = tf.range(grid, dtype=tf.float32) * (size / grid)
    ends = starts + size / grid
    rows = (ends > box[1]) & (starts < box[3])
    columns = (ends > box[0]) & (starts < box[2])
    return rows[:, None] & columns[None, :]


def build_archive(model, edit_candidates=8):
    preprocessor, vqvae = model.preprocessor, model.vqvae
    grid, size, top_p = vqvae.grid_size, model.image_size, model.sampling.top_p
    archive = task_archive(model)

    def seed_pair(seed):
        return tf.stack([seed, tf.constant(1, tf.int64)])

    def generate_guided(prompt, seed, temperature, top_k, guidance_scale):
        text_ids = _prompt_tokens(preprocessor, prompt, _sampling_checks(temperature, top_k, guidance_scale))["token_ids"]
        tokens = model.sample_ids(text_ids, guidance_scale, temperature, top_k, top_p, seed_pair(seed))
        tokens = tf.reshape(tokens, [-1, grid, grid])
        return {"png": _png(vqvae.decode(tokens)), "tokens": tokens, "known_words": preprocessor.known_words(text_ids)}

    def generate(prompt, seed, temperature, top_k):  # the model's own guidance (a Python number: 1 skips it)
        return generate_guided(prompt, seed, temperature, top_k, model.guidance_scale)

    def edit(image_bytes, box, prompt, seed, temperature, top_k, guidance_scale):
        inside = ((box[0] >= 0) & (box[0] < box[2]) & (box[2] <= size) & (box[1] >= 0) & (box[1] < box[3])
                  & (box[3] <= size))
        checks = [*_sampling_checks(temperature, top_k, guidance_scale),
                  tf.debugging.Assert(inside, [f"box must be x0 < x1, y0 < y1 inside the {size}x{size} image, got", box]),
                  tf.debugging.assert_equal(tf.shape(image_bytes)[0], tf.shape(prompt)[0],
                                            message="give one prompt per image: image_bytes and prompt differ in length")]
        text_ids = _prompt_tokens(preprocessor, prompt, checks)["token_ids"]
        tokens = tf.reshape(vqvae.encode(preprocessor.convert_images(image_bytes)), [-1, grid * grid])
        forced = tf.where(tf.reshape(_edit_mask(box, size, grid), [1, -1]), -1, tokens)
        # `edit_candidates` drawings per image; the one the model finds most likely as a whole image is kept.
        forced = tf.repeat(forced, edit_candidates, axis=0)
        text_ids = tf.repeat(text_ids, edit_candidates, axis=0)
        drawn = model.sample_ids(text_ids, guidance_scale, temperature, top_k, top_p, seed_pair(seed), forced_ids=forced)
        scores = tf.reshape(model.log_likelihood(text_ids, drawn), [-1, edit_candidates])
        best = tf.gather(tf.reshape(drawn, [-1, edit_candidates, grid * grid]), tf.argmax(scores, axis=1), batch_dims=1)
        best = tf.reshape(best, [-1, grid, grid])
        return {"png": _png(vqvae.decode(best)), "tokens": best}

    def encode(image_bytes):
        return {"tokens": vqvae.encode(preprocessor.convert_images(image_bytes))}

    def decode(tokens):
        tf.debugging.assert_less(tokens, vqvae.num_codes, message="token ids must be below the codebook size")
        images = vqvae.decode(tokens)
        return {"png": _png(images), "images": images}

    prompt, seed = tf.TensorSpec([None], tf.string, name="prompt"), tf.TensorSpec([], tf.int64, name="seed")
    temperature, top_k = tf.TensorSpec([], tf.float32, name="temperature"), tf.TensorSpec([], tf.int32, name="top_k")
    guidance = tf.TensorSpec([], tf.float32, name="guidance_scale")
    image_bytes = tf.TensorSpec([None], tf.string, name="image_bytes")
    add_endpoint(archive, ["serving_default", "generate"], generate, [prompt, seed, temperature, top_k])
    archive.add_endpoint("generate_guided", generate_guided, input_signature=[prompt, seed, temperature, top_k, guidance])
    archive.add_endpoint("edit", edit, input_signature=[image_bytes, tf.TensorSpec([4], tf.int32, name="box"), prompt,
                                                         seed, temperature, top_k, guidance])
    archive.add_endpoint("encode", encode, input_signature=[image_bytes])
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
    difference = np.abs(got - reference)  # pixels in 0..1
    return {"pixel_agreement": float(np.mean(difference <= 8 / 255)),  # what the export gate reads
            "max_pixel_difference": float(difference.max()), "mean_pixel_difference": float(difference.mean())}


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

    return write_export(base_dir, name, lambda: build_archive(model, config.generation.edit_candidates), config,
                        model.preprocessor.vocabulary, {},
                        write_tflite if quantizations else None)
