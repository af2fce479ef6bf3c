"""Export of a trained `ImageCaptioner`: a TF Serving SavedModel that captions image bytes with the
whole decoding loop in the graph, and TFLite models for an on-device loop.

SavedModel signatures (`<base>/<name>/<version>/`):
- `caption` (`serving_default`): `image_bytes` string[n] → `caption` string[n], `score` float[n]
  (length-normalised log-probability), `top_captions` string[n, beams], `top_scores` float[n, beams],
  by beam search with the configured width (`decode.beam_width`; 1 = greedy).
- `caption_beam`: the same with `beam_width` int32 (a scalar, 1…`decode.max_beam_width`): a signature
  cannot have an optional input, so the width a client chooses has its own signature.
- `caption_attention`: `image_bytes` string[n], `beam_width` int32 → `caption` string[n], `words` string[n, L]
  (the best caption's word pieces, "" after its end; L = `decode.max_length`) and `attention` float[n, L, regions]
  (the decoder's attention over the image's region grid while writing each of them; zeros past the decoder's
  input window): what a demo's attention strip shows.
- `caption_tensors`: `images` float[n, S, S, 3] 0..1 → `token_ids` int32[n, max_length] (greedy), for parity.
Decoding stops at `decode.max_length` tokens, so no request can hang.

`tflite/`: `caption_encoder_<q>.tflite` (image → the decoder's initial state: the regions' attention
keys or key/value caches), `caption_step_<q>.tflite` (one token, its position and the state →
`logits` and the next state), both batch 1 with built-in ops only; `caption_on_device.py` (the host
loop: greedy and beam search in NumPy over LiteRT), `vocabulary.txt`, `caption_decoding.json`, and
`parity.json`: how many greedy captions of the sample images equal the Keras model's.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfmm.errors import TfmmError
from tfmm.export import caption_on_device
from tfmm.export.saved_model import add_endpoint, task_archive, write_export
from tfmm.export.tflite import write_decoding_models
from tfmm.quiet import known_notices_hidden

TFLITE_QUANTIZATIONS = ("float32", "dynamic_int8")  # full int8 would need calibrating a recurrent state


def decoding_settings(model, beam_width):
    """What a decoding loop needs to know besides the weights (written as caption_decoding.json)."""
    tokenizer = model.preprocessor.tokenizer
    return {"start_id": tokenizer.start_id, "end_id": tokenizer.end_id, "pad_id": tokenizer.pad_id,
            "image_size": model.backbone.image_size, "max_length": model.max_length,
            "max_beam_width": model.max_beam_width, "beam_width": beam_width, "length_penalty": model.length_penalty}


def build_archive(model, beam_width):
    preprocessor = model.preprocessor
    size, max_length, max_beam = model.backbone.image_size, model.max_length, model.max_beam_width
    archive = task_archive(model)

    def decode(image_bytes, beam_width):
        check = tf.debugging.Assert((beam_width >= 1) & (beam_width <= max_beam),
                                    [f"beam_width must be between 1 and {max_beam}, got", beam_width])
        with tf.control_dependencies([check]):  # before the loop allocates beams
            beam_width = tf.identity(beam_width)
        images = preprocessor({"images": image_bytes})["images"]
        return images, model.generate(images, max_length, beam_width, model.length_penalty)

    def caption(image_bytes, beam_width):
        _, out = decode(image_bytes, beam_width)
        captions = preprocessor.detokenize(out["token_ids"])
        return {"caption": captions[:, 0], "score": out["scores"][:, 0], "top_captions": captions,
                "top_scores": out["scores"]}

    def caption_attention(image_bytes, beam_width):
        images, out = decode(image_bytes, beam_width)
        token_ids = out["token_ids"][:, 0]
        # The decoder re-reads its own caption (teacher forcing): row i is its attention while writing token i.
        length = model.backbone.sequence_length
        inputs = tf.concat([tf.fill([tf.shape(token_ids)[0], 1], model.start_id), token_ids], axis=1)[:, :length]
        inputs = tf.pad(inputs, [[0, 0], [0, length - tf.shape(inputs)[1]]], constant_values=model.pad_id)
        attention = model({"images": images, "token_ids": inputs}, training=False)["attention"][:, :max_length]
        # A caption can run past the decoder's input window (a GRU decodes any length): zeros there.
        attention = tf.pad(attention, [[0, 0], [0, max_length - tf.shape(attention)[1]], [0, 0]])
        return {"caption": preprocessor.detokenize(token_ids), "words": preprocessor.tokenizer.token_strings(token_ids),
                "attention": attention}

    image_bytes = tf.TensorSpec([None], tf.string, name="image_bytes")
    add_endpoint(archive, ["serving_default", "caption"], lambda image_bytes: caption(image_bytes, tf.constant(beam_width)),
                 [image_bytes])
    archive.add_endpoint("caption_beam", caption,
                         input_signature=[image_bytes, tf.TensorSpec([], tf.int32, name="beam_width")])
    archive.add_endpoint("caption_attention", caption_attention,
                         input_signature=[image_bytes, tf.TensorSpec([], tf.int32, name="beam_width")])
    archive.add_endpoint("caption_tensors", lambda images: {"token_ids": model.generate(images, max_length)["token_ids"][:, 0]},
                         input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    return archive


def _state_specs(model, max_length):
    size = model.backbone.image_size
    state = model.initial_state(tf.zeros([1, size, size, 3]), max_length)
    return {name: tf.TensorSpec(value.shape, value.dtype, name=name) for name, value in state.items()}


def write_tflite(model, settings, sample_images, keras_captions, out_dir, quantizations):
    """The encoder and step models for each quantization, the host loop, and greedy-caption parity."""
    unknown = [q for q in quantizations if q not in TFLITE_QUANTIZATIONS]
    if unknown:
        raise TfmmError(f"export.tflite_quantization {unknown}: the caption models convert to "
                        f"{', '.join(TFLITE_QUANTIZATIONS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = write_decoding_models(
        model, "caption", settings["image_size"], lambda images: model.initial_state(images, settings["max_length"]),
        lambda token_ids, index, state: model.step(token_ids, state, index),
        _state_specs(model, settings["max_length"]), out_dir, quantizations)
    (out_dir / "caption_decoding.json").write_text(json.dumps(settings, indent=2))
    (out_dir / "vocabulary.txt").write_text("\n".join(model.preprocessor.vocabulary) + "\n", encoding="utf-8")
    shutil.copy(caption_on_device.__file__, out_dir / "caption_on_device.py")
    parity = {}
    for quantization in quantizations:
        captioner = caption_on_device.OnDeviceCaptioner(out_dir, quantization)
        with known_notices_hidden():  # the first invoke's "Created TensorFlow Lite XNNPACK delegate"
            got = [captioner.caption(image)[0][0] for image in sample_images]
        parity[quantization] = {"greedy_caption_agreement": float(np.mean([a == b for a, b in zip(got, keras_captions)])),
                                "images": len(got), "bytes": sizes[quantization]}
    (out_dir / "parity.json").write_text(json.dumps(parity, indent=2))
    return parity


def export_captioner(model, config, samples, base_dir, name, quantizations=()):
    """Writes the next version of `name` under `base_dir`; returns its directory. `samples` (raw `images`)
    check that the TFLite loop writes the Keras model's greedy captions."""
    beam_width = config.decode.beam_width
    settings = decoding_settings(model, beam_width)
    images = model.preprocessor.convert_images(samples["images"]).numpy()
    keras_captions = [beams[0][0] for beams in model.caption_details(samples["images"], 1)["captions"]]
    return write_export(
        base_dir, name, lambda: build_archive(model, beam_width), config, model.preprocessor.vocabulary,
        {"caption_decoding.json": json.dumps(settings, indent=2)},
        (lambda folder: write_tflite(model, settings, images, keras_captions, folder, quantizations)) if quantizations else None,
    )
