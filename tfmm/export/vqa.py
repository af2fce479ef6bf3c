"""Export of a trained `VisualQuestionAnswerer`: a TF Serving SavedModel with raw inputs, and TFLite.

SavedModel signatures (`<base>/<name>/<version>/`):
- `answer` (`serving_default`): `image_bytes` string[n] (PNG/JPEG/...), `question` string[n] →
  `answer` string[n], `probabilities` float[n, answers] (in the order of `assets.extra/answers.txt`),
  `top_answers` string[n, 5] and `top_probabilities` float[n, 5]; with an attention fusion also `attention`
  float[n, regions] (the question's attention over the image's region grid, mean over heads and words).
  Image i is asked question i. (Clip models take `frames` string[n, frames] instead of `image_bytes`.)
- `answer_tensors`: `images` float[n, S, S, 3] 0..1, `token_ids` / `padding_mask` int32[n, 1, L] →
  `probabilities`: the tensors the TFLite model takes, for parity checks.

Beside it: `assets.extra/tfmm_config.toml`, `assets.extra/vocabulary.txt`, `assets.extra/answers.txt`,
and `tflite/answerer_{float32,dynamic_int8,int8}.tflite` with the two text files and `parity.json`
(agreement of the TFLite answers with Keras on sample questions).
"""

import numpy as np
import tensorflow as tf

from tfmm.export.saved_model import add_endpoint, task_archive, write_export
from tfmm.export.tflite import write_tflite_models


def _attention_over_image(attention, padding_mask):
    """(n, heads, tokens, regions) → (n, regions): the mean over heads and the question's real tokens."""
    mask = tf.cast(padding_mask, attention.dtype)[:, None, :, None]
    return tf.reduce_sum(attention * mask, axis=[1, 2]) / tf.reduce_sum(mask * tf.ones_like(attention), axis=[1, 2])


def build_archive(model):
    preprocessor, backbone = model.preprocessor, model.backbone
    size, length, frames = backbone.image_size, backbone.sequence_length, backbone.frames
    answers = tf.constant(model.answer_vocabulary)
    archive = task_archive(model)

    def answer(image_bytes, question):
        tf.debugging.assert_equal(tf.shape(image_bytes)[0], tf.shape(question)[0],
                                  message="give one question per image: image_bytes and question differ in length")
        tf.debugging.assert_greater(tf.strings.length(tf.strings.strip(question)), 0, message="a question is empty")
        inputs = preprocessor({"images": image_bytes, "questions": question})
        outputs = model(inputs, training=False)
        probabilities = outputs["probabilities"][:, 0]
        top = tf.math.top_k(probabilities, k=min(5, len(model.answer_vocabulary)))
        # Every output has the batch as dim 0, as TF Serving's row format requires.
        result = {"answer": tf.gather(answers, top.indices[:, 0]), "probabilities": probabilities,
                  "top_answers": tf.gather(answers, top.indices), "top_probabilities": top.values}
        if "attention" in outputs and not frames:
            result["attention"] = _attention_over_image(outputs["attention"][:, 0], inputs["padding_mask"][:, 0])
        return result

    def answer_tensors(images, token_ids, padding_mask):
        inputs = {"images": images, "token_ids": token_ids, "padding_mask": padding_mask}
        return {"probabilities": model(inputs, training=False)["probabilities"]}

    media = (tf.TensorSpec([None, frames], tf.string, name="frames") if frames
             else tf.TensorSpec([None], tf.string, name="image_bytes"))
    question = tf.TensorSpec([None], tf.string, name="question")
    add_endpoint(archive, ["serving_default", "answer"], answer, [media, question])
    image_shape = ([frames] if frames else []) + [size, size, 3]
    archive.add_endpoint("answer_tensors", answer_tensors, input_signature=[
        tf.TensorSpec([None, *image_shape], tf.float32, name="images"),
        tf.TensorSpec([None, 1, length], tf.int32, name="token_ids"),
        tf.TensorSpec([None, 1, length], tf.int32, name="padding_mask"),
    ])
    return archive


def _agreement(got, reference):
    got, reference = got.reshape(len(got), -1), reference.reshape(len(reference), -1)
    return {"answer_agreement": float(np.mean(got.argmax(-1) == reference.argmax(-1))),
            "max_probability_difference": float(np.abs(got - reference).max())}


def write_tflite(model, samples, out_dir, quantizations):
    """The numeric model (batch 1, one question) for each quantization; parity = answer agreement."""
    backbone = model.backbone
    image_shape = ([backbone.frames] if backbone.frames else []) + [backbone.image_size, backbone.image_size, 3]
    length = backbone.sequence_length
    specs = [tf.TensorSpec([1, *image_shape], tf.float32, name="images"),
             tf.TensorSpec([1, 1, length], tf.int32, name="token_ids"),
             tf.TensorSpec([1, 1, length], tf.int32, name="padding_mask")]
    return write_tflite_models({"answerer": (model, specs, samples, "probabilities")}, out_dir, quantizations, _agreement)


def export_answerer(model, config, samples, base_dir, name, quantizations=()):
    """Writes the next version of `name` under `base_dir`; returns its directory. `samples` (raw `images`
    with one of `questions` each) calibrate int8 and check parity."""
    preprocessor = model.preprocessor
    tokens = preprocessor.tokenize_numpy(list(samples["questions"]))
    tensors = {"images": preprocessor.convert_images(samples["images"]).numpy(),
               "token_ids": tokens["token_ids"][:, None], "padding_mask": tokens["padding_mask"][:, None]}
    return write_export(
        base_dir, name, lambda: build_archive(model), config, preprocessor.vocabulary,
        {"answers.txt": "\n".join(model.answer_vocabulary) + "\n"},
        (lambda folder: write_tflite(model, tensors, folder, quantizations)) if quantizations else None,
    )
