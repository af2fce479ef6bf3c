"""TFLite conversion from a SavedModel, built-in ops only, and running it in LiteRT.

Converted with `TFLiteConverter.from_saved_model` (from_keras_model is unreliable
under Keras 3), always with an explicit `supported_ops` so that no Flex op sneaks
in, and checked in `ai_edge_litert`'s interpreter.
"""

import numpy as np
import tensorflow as tf

from tfmm.errors import TfmmError

QUANTIZATIONS = ("float32", "dynamic_int8", "int8")


def convert_saved_model(saved_model_dir, quantization="float32", representative_dataset=None):
    """Returns `.tflite` bytes. `int8` quantizes weights and activations with the representative data
    (inputs and outputs stay float, quantized inside); `dynamic_int8` quantizes weights only."""
    if quantization not in QUANTIZATIONS:
        raise TfmmError(f"unknown TFLite quantization {quantization!r}; valid: {', '.join(QUANTIZATIONS)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization in ("dynamic_int8", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":
        if representative_dataset is None:
            raise TfmmError("int8 TFLite quantization needs a representative dataset")
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def interpreter(model):
    """An `ai_edge_litert` interpreter for a path or `.tflite` bytes."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(model))
    return Interpreter(model_path=str(model))


def op_names(model):
    return sorted({op["op_name"] for op in interpreter(model)._get_ops_details()})


def check_builtin_ops(model):
    """Raises if the model needs the Flex delegate (TensorFlow ops), which phones do not have."""
    flex = [name for name in op_names(model) if name.startswith("Flex") or name == "CUSTOM"]
    if flex:
        raise TfmmError(f"TFLite model uses non-built-in ops: {flex}")


class TFLiteRunner:
    """Runs a converted model's `serving_default` signature on NumPy inputs, one example at a time."""

    def __init__(self, model):
        self.interpreter = interpreter(model)
        self.runner = self.interpreter.get_signature_runner("serving_default")
        self.input_details = self.runner.get_input_details()

    def __call__(self, **inputs):
        batch = len(next(iter(inputs.values())))
        outputs = []
        for i in range(batch):
            feed = {name: np.asarray(value[i : i + 1], self.input_details[name]["dtype"]) for name, value in inputs.items()}
            outputs.append(self.runner(**feed))
        return {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}
