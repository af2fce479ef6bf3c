"""bfloat16 matmuls in a float32 model (`train.matmul_precision = "bfloat16"`).

On a CPU with AMX, oneDNN's bfloat16 matmuls run about 5× faster than float32 ones, while TensorFlow's
element-wise kernels (and XLA's fused ones) are slower in bfloat16 than in float32. Keras' `mixed_bfloat16`
policy puts both in bfloat16; this mode puts only the matmuls there. It turns on Grappler's oneDNN
auto-mixed-precision rewrite with its infer list emptied: MatMul, BatchMatMul, Einsum and the convolutions
(the rewrite's allow list) get bfloat16 inputs and everything else — GELU, layer norm, softmax, losses, the
optimizer — stays float32, as do the variables, the gradients and everything exported. On the peer bench's
tiny CLIP it was the fastest mode measured (with train.xla_fusion on): see BENCHMARKS.md.

Grappler rewrites a function when it is first run, so the mode applies to the functions first run inside
`bfloat16_matmuls` (Keras' train and test functions of a `fit`).
"""

import contextlib
import os

import tensorflow as tf

from tfmm.errors import TfmmError
from tfmm.train.precision import native_bfloat16

OPTION = "auto_mixed_precision_onednn_bfloat16"
INFER_LIST_REMOVE = "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_INFERLIST_REMOVE"
# Grappler's oneDNN infer list (tensorflow/core/grappler/optimizers/auto_mixed_precision_lists.h): ops it
# would turn to bfloat16 between two bfloat16 matmuls. Ops on no list stay float32.
INFER_LIST = (
    "Add", "AddN", "AddV2", "AvgPool", "AvgPool3D", "AvgPool3DGrad", "AvgPoolGrad", "BiasAdd", "BiasAddGrad",
    "BiasAddV1", "Erf", "Erfc", "FusedBatchNormV2", "FusedBatchNormGradV2", "FusedBatchNormV3",
    "FusedBatchNormGradV3", "LeakyRelu", "LeakyReluGrad", "Mul", "Sub", "Elu", "EluGrad", "FloorDiv",
    "_FusedBatchNormEx", "Inv", "Log", "Log1p", "LogSoftmax", "Mean", "Prod", "RealDiv", "Reciprocal", "Rsqrt",
    "Selu", "SeluGrad", "Sigmoid", "SigmoidGrad", "Softmax", "Softplus", "SoftplusGrad", "Softsign",
    "SoftsignGrad", "Sqrt", "Square", "SquaredDifference", "Sum", "Tanh", "TanhGrad",
)


def check_matmul_precision(precision):
    """Refuses a `train.matmul_precision` this machine cannot honour, with the reason."""
    if precision == "float32":
        return
    if tf.config.list_physical_devices("GPU"):
        raise TfmmError('train.matmul_precision = "bfloat16" is a CPU mode (oneDNN); on a GPU use '
                        "train.mixed_precision = true")
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        raise TfmmError('train.matmul_precision = "bfloat16" needs oneDNN, which TF_ENABLE_ONEDNN_OPTS=0 turns off')
    if not native_bfloat16():
        raise TfmmError('train.matmul_precision = "bfloat16" needs a CPU with bfloat16 instructions (AMX or '
                        "AVX-512 BF16); this one has neither, and TensorFlow would silently keep float32")


@contextlib.contextmanager
def bfloat16_matmuls(enabled):
    """Runs the matmuls and convolutions of the functions first run inside the block in bfloat16, the rest
    in float32; restores the previous settings afterwards."""
    if not enabled:
        yield
        return
    previous_option = tf.config.optimizer.get_experimental_options().get(OPTION, False)
    previous_list = os.environ.get(INFER_LIST_REMOVE)
    os.environ[INFER_LIST_REMOVE] = ",".join(INFER_LIST)
    tf.config.optimizer.set_experimental_options({OPTION: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({OPTION: previous_option})
        if previous_list is None:
            os.environ.pop(INFER_LIST_REMOVE, None)
        else:
            os.environ[INFER_LIST_REMOVE] = previous_list
