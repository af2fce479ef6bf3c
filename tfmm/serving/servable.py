"""One loaded SavedModel version: its signatures, and running them on NumPy inputs."""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfmm.errors import explain_graph_error
from tfmm.serving.status import ServingError, invalid

INIT_OP = "__saved_model_init_op"


def read_signature_defs(path):
    """The `serve` meta graph's SignatureDefs, read from saved_model.pb as TF Serving reads them."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{path}: no meta graph tagged 'serve'")


def looks_complete(path):
    """A version directory that a writer may still be filling is not loaded yet."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        return False
    variables = path / "variables"
    return not variables.exists() or (variables / "variables.index").is_file()


class Servable:
    def __init__(self, name, version, path):
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops, as tensorflow_model_server does)

        self.name, self.version, self.path = name, version, Path(path)
        self.signature_defs = read_signature_defs(path)
        self.model = tf.saved_model.load(str(path))
        parity = self.path / "assets.extra" / "tfmm_parity.json"  # a tfmm export's TFLite parity (metadata)
        self.parity = json.loads(parity.read_text()) if parity.is_file() else None

    def signature(self, name):
        name = name or "serving_default"
        if name == INIT_OP or name not in self.signature_defs:
            raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        return name, self.signature_defs[name]

    def input_arrays(self, signature_def, inputs):
        """Checks names, converts dtypes and checks ranks/static dims against the signature: NumPy arrays."""
        expected = dict(signature_def.inputs)
        if set(inputs) != set(expected):
            raise invalid(f"input size does not match signature: {len(inputs)}!={len(expected)} len({{{', '.join(sorted(inputs))}}}) "
                          f"!= len({{{', '.join(sorted(expected))}}}). Sent extra: {sorted(set(inputs) - set(expected))}. "
                          f"Missing but required: {sorted(set(expected) - set(inputs))}.")
        arrays = {}
        for name, value in inputs.items():
            info = expected[name]
            dtype = tf.dtypes.as_dtype(info.dtype)
            try:
                array = np.asarray(value, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
            except (TypeError, ValueError) as error:
                raise invalid(f"input {name}: cannot convert to {dtype.name}: {error}") from None
            if not info.tensor_shape.unknown_rank:
                dims = [d.size for d in info.tensor_shape.dim]
                if array.ndim != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, array.shape)):
                    raise invalid(f"input {name}: shape {list(array.shape)} does not match the signature's {dims}")
            if array.ndim and array.shape[0] == 0:
                raise invalid(f"input {name}: empty batch")
            arrays[name] = array
        return arrays

    def prepare_inputs(self, signature_def, inputs, check=None):
        """`input_arrays` as tensors of the signature's dtypes; `check(arrays)` first, on the NumPy arrays."""
        arrays = self.input_arrays(signature_def, inputs)
        if check is not None:
            check(arrays)
        return {name: tf.constant(array, dtype=tf.dtypes.as_dtype(signature_def.inputs[name].dtype))
                for name, array in arrays.items()}

    def run(self, signature_name, tensors, output_filter=()):
        name, signature_def = self.signature(signature_name)
        aliases = list(signature_def.outputs)
        for alias in output_filter:
            if alias not in signature_def.outputs:
                raise invalid(f"output tensor alias not found in signature: {alias} "
                              f"Outputs expected to be in the set {{{','.join(aliases)}}}.")
        try:
            outputs = self.model.signatures[name](**tensors)
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, ValueError, TypeError) as error:
            raise invalid(explain_graph_error(getattr(error, "message", None) or str(error))) from None
        keep = output_filter or aliases
        return {alias: outputs[alias].numpy() for alias in keep}
