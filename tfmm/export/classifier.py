"""Export of a trained `MultimodalClassifier`: a TF Serving SavedModel with raw inputs, and TFLite.

SavedModel signatures (`<base>/<name>/<version>/`):
- `classify` (`serving_default`): `image_bytes` string[n], `text` string[n] → per task `<task>` string[n]
  (the predicted class), `<task>_probabilities` float[n, classes] (ordered as `assets.extra/classes.json`),
  and the best five as `<task>_top_labels` string[n, 5] / `<task>_top_probabilities` float[n, 5].
- `classify_tensors`: the TFLite model's tensors → `<task>_probabilities`.

Beside it: `assets.extra/tfmm_config.toml`, `vocabulary.txt`, `classes.json`, and
`tflite/classifier_{float32,dynamic_int8,int8}.tflite` with the text files and `parity.json`.
"""

import json

import numpy as np
import tensorflow as tf

from tfmm.export.saved_model import add_endpoint, task_archive, write_export
from tfmm.export.tflite import write_tflite_models


def build_archive(model):
    preprocessor = model.preprocessor
    size, length = model.backbone.image_size, model.backbone.sequence_length
    names = {task: tf.constant(classes) for task, classes in model.tasks.items()}
    archive = task_archive(model)

    def outputs_for(result):
        out = {}
        for task in model.tasks:
            probabilities = result[f"{task}_probabilities"]
            top = tf.math.top_k(probabilities, k=min(5, len(model.tasks[task])))
            out[task] = tf.gather(names[task], top.indices[:, 0])
            out[f"{task}_probabilities"] = probabilities
            out[f"{task}_top_labels"], out[f"{task}_top_probabilities"] = tf.gather(names[task], top.indices), top.values
        return out

    def classify(image_bytes, text):
        tf.debugging.assert_equal(tf.shape(image_bytes)[0], tf.shape(text)[0],
                                  message="give one text per image: image_bytes and text differ in length")
        return outputs_for(model(preprocessor({"images": image_bytes, "text": text}), training=False))

    def classify_tensors(images, token_ids, padding_mask):
        result = model({"images": images, "token_ids": token_ids, "padding_mask": padding_mask}, training=False)
        return {f"{task}_probabilities": result[f"{task}_probabilities"] for task in model.tasks}

    specs = [tf.TensorSpec([None], tf.string, name="image_bytes"), tf.TensorSpec([None], tf.string, name="text")]
    add_endpoint(archive, ["serving_default", "classify"], classify, specs)
    archive.add_endpoint("classify_tensors", classify_tensors, input_signature=[
        tf.TensorSpec([None, size, size, 3], tf.float32, name="images"),
        tf.TensorSpec([None, length], tf.int32, name="token_ids"),
        tf.TensorSpec([None, length], tf.int32, name="padding_mask"),
    ])
    return archive


def _agreement(got, reference):
    parity = {}
    for key in reference:
        task = key.removesuffix("_probabilities")
        parity[f"{task}_agreement"] = float(np.mean(got[key].argmax(-1) == reference[key].argmax(-1)))
        parity[f"{task}_max_probability_difference"] = float(np.abs(got[key] - reference[key]).max())
    parity["agreement"] = min(v for k, v in parity.items() if k.endswith("_agreement"))  # what the export gate reads
    return parity


def export_classifier(model, config, samples, base_dir, name, quantizations=()):
    """Writes the next version of `name` under `base_dir`; returns its directory. `samples` (raw `images`
    and `texts`) calibrate int8 and check parity."""
    preprocessor = model.preprocessor
    size, length = model.backbone.image_size, model.backbone.sequence_length
    keys = tuple(f"{task}_probabilities" for task in model.tasks)
    tensors = {"images": preprocessor.convert_images(samples["images"]).numpy(),
               **preprocessor.tokenize_numpy(list(samples["texts"]))}

    def tflite(folder):
        specs = [tf.TensorSpec([1, size, size, 3], tf.float32, name="images"),
                 tf.TensorSpec([1, length], tf.int32, name="token_ids"),
                 tf.TensorSpec([1, length], tf.int32, name="padding_mask")]
        write_tflite_models({"classifier": (model, specs, tensors, keys)}, folder, quantizations, _agreement)

    return write_export(base_dir, name, lambda: build_archive(model), config, preprocessor.vocabulary,
                        {"classes.json": json.dumps(model.tasks, indent=2)}, tflite if quantizations else None)
