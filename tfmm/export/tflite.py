"""TFLite conversion from a SavedModel, built-in ops only, and running it in LiteRT.

Converted with `TFLiteConverter.from_saved_model` (from_keras_model is unreliable
under Keras 3), always with an explicit `supported_ops` so that no Flex op sneaks
in, and checked in `ai_edge_litert`'s interpreter.
"""

import json
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfmm.errors import TfmmError
from tfmm.quiet import known_notices_hidden

QUANTIZATIONS = ("float32", "dynamic_int8", "int8")

# Ops kept in float in `int8` models. Quantising them all cost most of the accuracy:
# measured on the shapes retrieval model, text-encoder cosine to Keras went from 0.29
# (min) / 0.71 (mean) with everything int8 to 0.998 / 0.9998 with these in float (the
# attention mask adds a huge negative number, which wrecks a shared int8 scale; layer
# and group norms follow). Convolutions, matmuls and fully-connected layers, where
# the weights and the work are, stay int8.
FLOAT_OPS_IN_INT8 = [
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "SQUARE", "SQRT", "RSQRT", "SQUARED_DIFFERENCE", "MEAN", "SUM",
    "SOFTMAX", "GELU", "SELECT", "SELECT_V2",
]


def convert_saved_model(saved_model_dir, quantization="float32", representative_dataset=None):
    """Returns `.tflite` bytes.

    `dynamic_int8` quantizes weights only. `int8` quantizes weights and activations of
    convolutions, matmuls and fully-connected layers with ranges calibrated on the
    representative data, keeping `FLOAT_OPS_IN_INT8` in float; inputs and outputs stay float.
    """
    if quantization not in QUANTIZATIONS:
        raise TfmmError(f"unknown TFLite quantization {quantization!r}; valid: {', '.join(QUANTIZATIONS)}")
    with known_notices_hidden():  # the converter and its quantiser print progress lines to stderr
        return _convert(saved_model_dir, quantization, representative_dataset)


def _convert(saved_model_dir, quantization, representative_dataset):
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization in ("dynamic_int8", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":
        if representative_dataset is None:
            raise TfmmError("int8 TFLite quantization needs a representative dataset")
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative_dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=FLOAT_OPS_IN_INT8),
        )
        return debugger.get_nondebug_quantized_model()
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
        with known_notices_hidden():  # the first invoke applies the XNNPACK delegate, which says so
            for i in range(batch):
                feed = {name: np.asarray(value[i : i + 1], self.input_details[name]["dtype"]) for name, value in inputs.items()}
                outputs.append(self.runner(**feed))
        return {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}


def _keys(output_key):
    return (output_key,) if isinstance(output_key, str) else tuple(output_key)


def function_saved_model(model, function, input_specs, path):
    """A SavedModel whose `serving_default` is `function` (using `model`'s weights) on `input_specs`;
    fixed shapes in the specs let the converter use built-in ops only."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", function, input_signature=input_specs)
    archive.write_out(str(path), verbose=False)


def single_example_saved_model(model, input_specs, output_key, path):
    """A batch-1 SavedModel of `model` returning only `output_key` (a name or several)."""
    names = [spec.name for spec in input_specs]

    def serve(*tensors):
        inputs = tensors[0] if len(tensors) == 1 else dict(zip(names, tensors))
        outputs = model(inputs, training=False)
        return {key: outputs[key] for key in _keys(output_key)}

    function_saved_model(model, serve, input_specs, path)


def write_tflite_models(models, out_dir, quantizations, compare):
    """Converts each model for each quantization, checks its ops, measures parity with Keras.

    `models`: file stem → (Keras model, batch-1 input specs, sample inputs {name: array}, output key
    or keys). The samples calibrate int8 and are run through both the Keras model and the `.tflite`;
    `compare(tflite_output, keras_output)` (arrays, or {key: array} for several keys) → a dict of
    parity numbers, written per file with its size to `out_dir/parity.json` and returned.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parity = {}
    with tempfile.TemporaryDirectory() as scratch:
        for stem, (model, specs, samples, output_key) in models.items():
            saved = Path(scratch) / stem
            single_example_saved_model(model, specs, output_key, saved)
            names = [spec.name for spec in specs]

            def representative(samples=samples, names=names):
                for i in range(len(samples[names[0]])):
                    yield {name: samples[name][i : i + 1] for name in names}

            # Called directly: a task's `predict` would run its preprocessor on these already-numeric inputs.
            predicted = model(samples[names[0]] if len(names) == 1 else samples, training=False)
            keys = _keys(output_key)
            pick = (lambda out: keras.ops.convert_to_numpy(out[keys[0]])) if isinstance(output_key, str) else (
                lambda out: {key: keras.ops.convert_to_numpy(out[key]) for key in keys})
            reference = pick(predicted)
            for quantization in quantizations:
                content = convert_saved_model(saved, quantization, representative)
                check_builtin_ops(content)
                path = out_dir / f"{stem}_{quantization}.tflite"
                path.write_bytes(content)
                got = pick(TFLiteRunner(content)(**samples))
                parity[path.name] = {**compare(got, reference), "bytes": len(content)}
    (out_dir / "parity.json").write_text(json.dumps(parity, indent=2))
    return parity


# The headline parity figure of each app's parity.json entries (higher is better, 0..1).
GATE_MEASURES = ("min_cosine", "answer_agreement", "agreement", "greedy_caption_agreement", "pixel_agreement",
                 "mask_agreement", "reply_agreement")


def quantization_of(name):
    """The quantization a parity.json key or a `.tflite` file name ends with."""
    stem = name.removesuffix(".tflite")
    for quantization in sorted(QUANTIZATIONS, key=len, reverse=True):  # dynamic_int8 before int8
        if stem == quantization or stem.endswith("_" + quantization):
            return quantization
    raise ValueError(f"no quantization in {name!r}")


def gate_tflite(folder, gate):
    """Leaves out every quantization whose parity is below its `gate` threshold (`ParityGate`): its
    `.tflite` files are removed and `parity.json` says why; a strict gate raises instead. Returns the
    parity with a `gate` entry per file: measure, value, threshold, shipped."""
    folder = Path(folder)
    parity = json.loads((folder / "parity.json").read_text())
    failed = {}
    for key, entry in parity.items():
        quantization = quantization_of(key)
        measure = next(m for m in GATE_MEASURES if m in entry)
        value, threshold = float(entry[measure]), float(getattr(gate, quantization))
        entry["gate"] = {"measure": measure, "value": value, "threshold": threshold, "shipped": value >= threshold}
        if value < threshold:
            failed.setdefault(quantization, []).append(f"{key}: {measure} {value:.3f} < {threshold}")
    for quantization, reasons in failed.items():
        if gate.strict:
            raise TfmmError(f"TFLite {quantization} below export.parity.{quantization} ({'; '.join(reasons)}); "
                            "nothing was exported (strict)")
        for key, entry in parity.items():
            if quantization_of(key) == quantization:
                entry["gate"]["shipped"] = False
        for path in folder.glob("*.tflite"):
            if quantization_of(path.name) == quantization:
                path.unlink()
        print(f"not shipped: the {quantization} TFLite files ({'; '.join(reasons)}; threshold export.parity.{quantization})")
    (folder / "parity.json").write_text(json.dumps(parity, indent=2))
    return parity


def write_decoding_models(model, prefix, image_size, encoder, step, state_specs, out_dir, quantizations):
    """The two TFLite files of an on-device decoding loop, per quantization, built-in ops only:
    `<prefix>_encoder_<q>.tflite` (`images` float[1, S, S, 3] → the state: `encoder(images)`) and
    `<prefix>_step_<q>.tflite` (`token_ids` int32[1], `index` int32 and the state → `logits` and the next state:
    `step(token_ids, index, state dict)` → (logits, state dict)). `state_specs` {name: TensorSpec} fix the state's
    shapes. Returns {quantization: bytes of both files}."""
    names = sorted(state_specs)

    def step_function(token_ids, index, *state):
        logits, new_state = step(token_ids, index, dict(zip(names, state)))
        return {"logits": logits, **new_state}

    sizes = {}
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as scratch:
        function_saved_model(model, encoder, [tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="images")],
                             Path(scratch) / "encoder")
        function_saved_model(model, step_function, [tf.TensorSpec([1], tf.int32, name="token_ids"),
                                                    tf.TensorSpec([], tf.int32, name="index"),
                                                    *(tf.TensorSpec(state_specs[n].shape, state_specs[n].dtype, name=n)
                                                      for n in names)], Path(scratch) / "step")
        for quantization in quantizations:
            for part in ("encoder", "step"):
                content = convert_saved_model(Path(scratch) / part, quantization)
                check_builtin_ops(content)
                (out_dir / f"{prefix}_{part}_{quantization}.tflite").write_bytes(content)
                sizes[quantization] = sizes.get(quantization, 0) + len(content)
    return sizes
