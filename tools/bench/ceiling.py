"""The machine's matmul ceiling and a model's matmul FLOPs, so a training step's speed can be read as a
share of what the CPU can do (`python -m tools.bench peer`)."""

import string
import time

import numpy as np
import tensorflow as tf

# A large square product (what the CPU can do) and the tiny CLIP's MLP matmul (8320 tokens × 256 → 1024).
SHAPES = ((2048, 2048, 2048), (8320, 256, 1024))


def _best_rate(function, flops, seconds=1.0):
    """FLOP/s of the fastest call of `function` over about `seconds` after two warm-up calls."""
    function(), function()
    best, spent = float("inf"), 0.0
    while spent < seconds:
        started = time.perf_counter()
        function()
        elapsed = time.perf_counter() - started
        best, spent = min(best, elapsed), spent + elapsed
    return flops / best


def matmul_gflops(shapes=SHAPES, seconds=1.0, bfloat16=True):
    """{"TensorFlow float32 m×k×n": GFLOP/s, ...} for TensorFlow float32 and bfloat16 (oneDNN: AMX or
    AVX-512 BF16 where the CPU has them; `bfloat16=False` leaves it out) and NumPy float32."""
    rng = np.random.default_rng(0)
    results = {}
    for m, k, n in shapes:
        a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
        flops, label = 2.0 * m * k * n, f"{m}×{k}×{n}"
        for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16))[:2 if bfloat16 else 1]:
            x, y = tf.constant(a, dtype), tf.constant(b, dtype)
            product = tf.function(lambda x=x, y=y: tf.linalg.matmul(x, y))
            results[f"TensorFlow {name} {label}"] = _best_rate(lambda: product().numpy(), flops, seconds) / 1e9
        results[f"NumPy float32 {label}"] = _best_rate(lambda: a @ b, flops, seconds) / 1e9
    return results


def ceiling(rates, precision):
    """The best GFLOP/s any library reached at `precision` ("float32" or "bfloat16")."""
    return max(value for name, value in rates.items() if f" {precision} " in name)


def _einsum_flops(op):
    equation = op.get_attr("equation").decode()
    operands = equation.split("->")[0].split(",")
    sizes = {}
    for letters, tensor in zip(operands, op.inputs):
        if "." in letters:
            raise ValueError(f"einsum with an ellipsis is not counted: {equation}")
        sizes.update(zip(letters, tensor.shape.as_list()))
    return 2 * int(np.prod([sizes[c] for c in sizes if c in string.ascii_letters]))


def _matmul_flops(op):
    a = op.inputs[0].shape.as_list()
    transpose_a = op.get_attr("adj_x" if "Batch" in op.type else "transpose_a")
    m, k = (a[-1], a[-2]) if transpose_a else (a[-2], a[-1])
    n = op.outputs[0].shape.as_list()[-1]
    batch = op.outputs[0].shape.as_list()[:-2]
    return 2 * m * k * n * int(np.prod(batch or [1]))


def _conv_flops(op):
    kernel = op.inputs[1].shape.as_list()  # [height, width, in, out]
    return 2 * int(np.prod(op.outputs[0].shape.as_list())) * kernel[0] * kernel[1] * kernel[2]


COUNTERS = {"MatMul": _matmul_flops, "BatchMatMulV2": _matmul_flops, "BatchMatMulV3": _matmul_flops,
            "Einsum": _einsum_flops, "Conv2D": _conv_flops}


def forward_flops(function, input_specs):
    """FLOPs of the matmuls, einsums and convolutions of one call of `function` on fixed-shape
    `input_specs` (a structure of `tf.TensorSpec`), counted from its traced graph; element-wise work
    is left out, as in the usual 2·m·k·n count. A training step costs about 3× its forward pass."""
    graph = tf.function(function).get_concrete_function(input_specs).graph
    total = 0
    for op in graph.get_operations():
        if op.type in COUNTERS:
            if not all(t.shape.is_fully_defined() for t in [*op.inputs[:2], *op.outputs]):
                raise ValueError(f"{op.name}: the shapes must be fixed to count FLOPs")
            total += COUNTERS[op.type](op)
    return total
