"""Export of a trained `VisualAssistant`: a TF Serving SavedModel that replies with the decoding loop in the graph,
and TFLite models for an on-device loop.

SavedModel signatures (`<base>/<name>/<version>/`):
- `chat` (`serving_default`): `image_bytes` string[n], `history` string[n, 2K] (the conversation so far: question,
  answer, question, answer, ...; K = 0 for a first question; "" pairs where a conversation has fewer turns than
  the longest of the request) and `question` string[n] → `reply` string[n] (greedy) and `turns_dropped` int32[n]
  (earlier turns left out, oldest first, because the conversation is longer than the context). A reply stops at
  `max_reply_length` tokens, so no request can hang; an empty question or one longer than the context fails the
  request with a message saying so.
- `chat_tensors`: `images` float[n, S, S, 3] and `prompt_ids` int32[n, L] (-1 after each prompt) → `token_ids`.

`tflite/`: `assistant_encoder_<q>.tflite` (image → the language model's key/value caches holding the image tokens),
`assistant_step_<q>.tflite` (one token, its index and the caches → next-token `logits` and the caches), batch 1,
built-in ops only; `assistant_on_device.py` (tokenizer, prompt and greedy loop in Python + NumPy over LiteRT),
`vocabulary.txt`, `assistant_decoding.json`, and `parity.json`: the share of sample replies equal to Keras's.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfmm.errors import TfmmError
from tfmm.export import assistant_on_device
from tfmm.export.saved_model import add_endpoint, task_archive, write_export
from tfmm.export.tflite import write_decoding_models
from tfmm.models.visual_assistant_preprocessor import ASSISTANT, USER, special_ids
from tfmm.quiet import known_notices_hidden
from tfmm.text import WordPieceTokenizer

TFLITE_QUANTIZATIONS = ("float32", "dynamic_int8")  # full int8 would need calibrating the caches


def decoding_settings(model):
    """What a decoding loop needs besides the weights (written as assistant_decoding.json)."""
    start, end, pad = special_ids(model.preprocessor.tokenizer)
    return {"start_id": start, "end_id": end, "pad_id": pad, "image_size": model.backbone.image_encoder.input.shape[1],
            "sequence_length": model.preprocessor.sequence_length, "max_reply_length": model.max_reply_length,
            "user": USER, "assistant": ASSISTANT}


def build_archive(model):
    size = model.backbone.image_encoder.input.shape[1]
    room = model.preprocessor.sequence_length - model.max_reply_length
    archive = task_archive(model)

    def chat(image_bytes, history, question):
        checks = [
            tf.debugging.assert_equal(tf.shape(image_bytes)[0], tf.shape(question)[0],
                                      message="give one question per image: image_bytes and question differ in length"),
            tf.debugging.assert_equal(tf.shape(history)[0], tf.shape(question)[0],
                                      message="give one history row per question"),
            tf.debugging.assert_equal(tf.shape(history)[1] % 2, 0,
                                      message="history holds question, answer pairs: its width must be even"),
            tf.debugging.Assert(tf.reduce_all(tf.strings.length(tf.strings.strip(question)) > 0),
                                ["a question is empty"]),
        ]
        with tf.control_dependencies(checks):
            prompt = model.prompt_tensors(history, question)
        fits = tf.debugging.Assert(tf.reduce_all(prompt["question_length"] + 1 <= room),
                                   [f"a question does not fit the context ({room} word positions with the start "
                                    "token; its length in tokens:", prompt["question_length"]])
        with tf.control_dependencies([fits]):
            out = model.reply_tensors(image_bytes, tf.identity(prompt["prompt_ids"]))
        return {"reply": out["reply"], "turns_dropped": prompt["dropped"]}

    add_endpoint(archive, ["serving_default", "chat"], chat,
                 [tf.TensorSpec([None], tf.string, name="image_bytes"),
                  tf.TensorSpec([None, None], tf.string, name="history"),
                  tf.TensorSpec([None], tf.string, name="question")])
    archive.add_endpoint("chat_tensors", lambda images, prompt_ids: {
        "token_ids": model.decode_tensors(images, prompt_ids)["token_ids"]},
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images"),
                         tf.TensorSpec([None, None], tf.int32, name="prompt_ids")])
    return archive


def write_tflite(model, settings, samples, keras_replies, out_dir, quantizations):
    """The encoder and step models for each quantization, the host loop, and reply parity with Keras."""
    unknown = [q for q in quantizations if q not in TFLITE_QUANTIZATIONS]
    if unknown:
        raise TfmmError(f"export.tflite_quantization {unknown}: the assistant's models convert to "
                        f"{', '.join(TFLITE_QUANTIZATIONS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    length = settings["sequence_length"]
    language_model = model.backbone.language_model
    images = model.preprocessor.convert_images(samples["images"]).numpy()
    state = language_model.initial_state(model.backbone.image_tokens(images[:1]), length)
    sizes = write_decoding_models(
        model, "assistant", settings["image_size"],
        lambda images: language_model.initial_state(model.backbone.image_tokens(images), length),
        lambda token_ids, index, state: language_model.step(token_ids, state, index),
        {name: tf.TensorSpec(value.shape, value.dtype) for name, value in state.items()}, out_dir, quantizations)
    (out_dir / "assistant_decoding.json").write_text(json.dumps(settings, indent=2))
    (out_dir / "vocabulary.txt").write_text("\n".join(model.preprocessor.vocabulary) + "\n", encoding="utf-8")
    shutil.copy(assistant_on_device.__file__, out_dir / "assistant_on_device.py")
    parity = {}
    for quantization in quantizations:
        assistant = assistant_on_device.OnDeviceAssistant(out_dir, quantization)
        with known_notices_hidden():  # the first invoke's "Created TensorFlow Lite XNNPACK delegate"
            got = [assistant.reply(image, history, question)
                   for image, history, question in zip(images, samples["histories"], samples["questions"])]
        parity[quantization] = {"reply_agreement": float(np.mean([a == b for a, b in zip(got, keras_replies)])),
                                "replies": len(got), "bytes": sizes[quantization]}
    (out_dir / "parity.json").write_text(json.dumps(parity, indent=2))
    return parity


def export_assistant(model, config, samples, base_dir, name, quantizations=()):
    """Writes the next version of `name` under `base_dir`; returns its directory. `samples` (encoded `images`,
    `histories`, `questions`) check that the TFLite loop replies as the Keras model does."""
    if quantizations and not isinstance(model.preprocessor.tokenizer, WordPieceTokenizer):
        raise TfmmError("export.tflite: the on-device loop tokenizes with WordPiece; a language model from a preset "
                        "brings its own tokenizer (set export.tflite = false)")
    settings = decoding_settings(model)
    keras_replies = model.reply(samples["images"], samples["histories"], samples["questions"]) if quantizations else []
    return write_export(
        base_dir, name, lambda: build_archive(model), config, model.preprocessor.vocabulary,
        {"assistant_decoding.json": json.dumps(settings, indent=2)},
        (lambda folder: write_tflite(model, settings, samples, keras_replies, folder, quantizations))
        if quantizations else None)
