"""Export of a trained `ReferringSegmenter`: a TF Serving SavedModel with raw inputs, and TFLite.

SavedModel signatures (`<base>/<name>/<version>/`):
- `segment` (`serving_default`): `image_bytes` string[n], `text` string[n] → `mask_png_bytes` string[n] (a PNG of the
  mask at the model's S×S, 255 = named), `probabilities` float[n, S, S] and `score` float[n] (the mean probability
  over the marked pixels; 0 for an empty mask: the expression names nothing).
- `segment_tensors`: the TFLite model's tensors → `logits` float[n, S, S].

Beside it: `assets.extra/tfmm_config.toml`, `vocabulary.txt`, and `tflite/segmenter_{float32,dynamic_int8,int8}
.tflite` with `parity.json` (`mask_agreement`: the share of pixels whose mask matches the Keras model's).
"""

import numpy as np
import tensorflow as tf

from tfmm.export.saved_model import add_endpoint, task_archive, write_export
from tfmm.export.tflite import write_tflite_models


def build_archive(model):
    size, length = model.backbone.image_size, model.backbone.sequence_length
    archive = task_archive(model)

    def segment(image_bytes, text):
        tf.debugging.assert_equal(tf.shape(image_bytes)[0], tf.shape(text)[0],
                                  message="give one text per image: image_bytes and text differ in length")
        result = model.segment_tensors(image_bytes, text)
        pngs = tf.map_fn(lambda m: tf.io.encode_png(m[..., None] * 255), result["masks"], fn_output_signature=tf.string)
        return {"mask_png_bytes": pngs, "probabilities": result["probabilities"], "score": result["score"]}

    def segment_tensors(images, token_ids, padding_mask):
        return {"logits": model({"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
                                training=False)["logits"]}

    add_endpoint(archive, ["serving_default", "segment"], segment,
                 [tf.TensorSpec([None], tf.string, name="image_bytes"), tf.TensorSpec([None], tf.string, name="text")])
    archive.add_endpoint("segment_tensors", segment_tensors, input_signature=[
        tf.TensorSpec([None, size, size, 3], tf.float32, name="images"),
        tf.TensorSpec([None, length], tf.int32, name="token_ids"),
        tf.TensorSpec([None, length], tf.int32, name="padding_mask"),
    ])
    return archive


def _mask_agreement(got, reference):
    return {"mask_agreement": float(np.mean((got > 0) == (reference > 0))),
            "max_logit_difference": float(np.abs(got - reference).max())}


def export_segmenter(model, config, samples, base_dir, name, quantizations=()):
    """Writes the next version of `name` under `base_dir`; returns its directory. `samples` (raw `images` and
    `texts`) calibrate int8 and check parity."""
    preprocessor = model.preprocessor
    size, length = model.backbone.image_size, model.backbone.sequence_length
    tensors = {"images": preprocessor.convert_images(samples["images"]).numpy(),
               **preprocessor.tokenize_numpy(list(samples["texts"]))}

    def tflite(folder):
        specs = [tf.TensorSpec([1, size, size, 3], tf.float32, name="images"),
                 tf.TensorSpec([1, length], tf.int32, name="token_ids"),
                 tf.TensorSpec([1, length], tf.int32, name="padding_mask")]
        write_tflite_models({"segmenter": (model, specs, tensors, "logits")}, folder, quantizations, _mask_agreement)

    return write_export(base_dir, name, lambda: build_archive(model), config, preprocessor.vocabulary,
                        write_tflite=tflite if quantizations else None)
