"""TF Serving's REST JSON ↔ tensors (`util/json_tensor.cc`): row and columnar formats, b64, `_bytes`."""

import base64
import binascii
import math

import numpy as np
import tensorflow as tf

from tfmm.serving.status import invalid


def _decode_value(value, dtype, name):
    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, dict):
            if set(value) != {"b64"} or not isinstance(value["b64"], str):
                raise invalid(f"JSON Value: {_short(value)} Type: Object is not of expected type: string "
                              "(an object must have exactly one key, \"b64\", with a string value)")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid(f"Unable to base64 decode the value of input {name}") from None
        raise invalid(f"JSON Value: {_short(value)} Type: {_json_type(value)} is not of expected type: string")
    if dtype == tf.bool:
        if isinstance(value, bool):
            return value
        raise invalid(f"JSON Value: {_short(value)} Type: {_json_type(value)} is not of expected type: bool")
    if dtype.is_integer:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise invalid(f"JSON Value: {_short(value)} Type: {_json_type(value)} is not of expected type: {dtype.name}")
    if dtype.is_floating:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise invalid(f"JSON Value: {_short(value)} Type: {_json_type(value)} is not of expected type: {dtype.name}")
    raise invalid(f"input {name}: dtype {dtype.name} is not supported over REST")


def _json_type(value):
    return {dict: "Object", list: "Array", str: "String", bool: "Bool", type(None): "Null"}.get(type(value), "Number")


def _short(value):
    text = str(value)
    return text if len(text) < 60 else text[:57] + "..."


def _shape_of(value):
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def to_array(value, dtype, name):
    """A nested JSON list → ndarray of the signature dtype; ragged lists are errors."""
    shape = _shape_of(value)

    def walk(node, depth):
        if depth == len(shape):
            if isinstance(node, list):
                raise invalid("Encountered list at unexpected size: a ragged or nested value does not match the tensor's shape")
            return [_decode_value(node, dtype, name)]
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise invalid(f"Encountered list at unexpected size: {len(node) if isinstance(node, list) else 'scalar'} "
                          f"at dimension {depth}, expected {shape[depth]}")
        return [v for child in node for v in walk(child, depth + 1)]

    flat = walk(value, 0)
    array = np.array(flat, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
    return array.reshape(shape)


def parse_predict_body(body, signature_def):
    """Returns (inputs dict of arrays, row_format) for a predict request object."""
    inputs = dict(signature_def.inputs)
    dtypes = {name: tf.dtypes.as_dtype(info.dtype) for name, info in inputs.items()}
    if ("instances" in body) == ("inputs" in body):
        if "instances" in body:
            raise invalid("Invalid request. JSON object: expecting only one of 'inputs' or 'instances' keys")
        raise invalid("Missing 'inputs' or 'instances' key")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise invalid("Expecting 'instances' to be a non-empty list")
        if len(inputs) == 1:
            (name,) = inputs
            rows = [instance[name] if isinstance(instance, dict) and set(instance) == {name} else instance for instance in instances]
            return {name: to_array(rows, dtypes[name], name)}, True
        columns = {name: [] for name in inputs}
        for index, instance in enumerate(instances):
            if not isinstance(instance, dict) or set(instance) != set(inputs):
                got = sorted(instance) if isinstance(instance, dict) else _json_type(instance)
                raise invalid(f"instances[{index}]: expecting an object with the keys {sorted(inputs)}, got {got}")
            for name in inputs:
                columns[name].append(instance[name])
        arrays = {name: to_array(values, dtypes[name], name) for name, values in columns.items()}
        return arrays, True
    columnar = body["inputs"]
    if isinstance(columnar, dict) and not (len(inputs) == 1 and set(columnar) == {"b64"}):
        missing = [name for name in inputs if name not in columnar]
        if missing:
            raise invalid(f"Missing named input: {missing[0]} in 'inputs' object.")
        return {name: to_array(columnar[name], dtypes[name], name) for name in inputs}, False
    if len(inputs) != 1:
        raise invalid("'inputs' must be an object keyed by input name when the signature has several inputs")
    (name,) = inputs
    return {name: to_array(columnar, dtypes[name], name)}, False


def _float_list(array):
    """Floats at their own precision: float32 values print as their shortest float32 form."""
    if array.dtype == np.float32:
        return np.vectorize(lambda v: float(repr(v)) if math.isfinite(v) else float(v), otypes=[object])(array).tolist()
    return array.tolist()


def _json_value(alias, array):
    if array.dtype == object or array.dtype.kind in "SU":
        flat = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        if alias.endswith("_bytes"):
            items = [{"b64": base64.b64encode(v).decode()} for v in flat]
        else:
            items = [v.decode("utf-8", errors="replace") for v in flat]
        return np.array(items, dtype=object).reshape(array.shape).tolist()
    if array.dtype.kind == "f":
        return _float_list(array)
    return array.tolist()


def make_predict_response(outputs, row_format):
    if row_format:
        for alias, array in outputs.items():
            if np.ndim(array) == 0:
                raise invalid(f"Tensor name: {alias} has no shape information ")
        sizes = {len(a) for a in outputs.values()}
        if len(sizes) != 1:
            raise invalid("All outputs must share the first dimension to be returned in the row format; use 'inputs'")
        values = {alias: _json_value(alias, array) for alias, array in outputs.items()}
        if len(values) == 1:
            return {"predictions": next(iter(values.values()))}
        count = sizes.pop()
        return {"predictions": [{alias: values[alias][i] for alias in values} for i in range(count)]}
    values = {alias: _json_value(alias, array) for alias, array in outputs.items()}
    return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
