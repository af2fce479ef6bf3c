"""XLA fusion of the element-wise work around the matmuls, during training only.

TensorFlow runs GELU, layer norm, softmax, casts and the optimizer's updates as one kernel per op,
which on a CPU with fast matmuls (AMX) costs more than the matmuls of a small transformer.
Auto-clustering limited to FUSIBLE ops compiles each chain of element-wise ops into one XLA kernel
and leaves the matmuls to oneDNN. Whether that pays depends on the CPU and the model
(`python -m tools.bench fusion` times each app's step both ways): on a Xeon with AMX, where oneDNN's
matmuls are fast and the element-wise work dominates, the transformer apps trained faster with it and
CNNs slower (XLA clusters break oneDNN's convolution + bias + activation fusions); on an AVX2-only EPYC
it was about neutral for every app. So `train.xla_fusion = "auto"`, the default of the
transformer apps (retrieval, vqa, classify), turns it on only on CPUs with AMX.
Whole-step XLA (`train.jit_compile`) compiles the matmuls too, and XLA's CPU matmuls are slower.

TensorFlow reads `TF_XLA_FLAGS` once, when it first optimises a graph, so the flags are put in the
environment when this module is imported (they do nothing while auto-clustering is off) and
`xla_fusion` switches auto-clustering on for the functions traced inside it.
"""

import contextlib
import os

import tensorflow as tf

from tfmm.train.precision import cpu_flags

# cpu_global_jit: auto-clustering also on CPU; FUSIBLE: element-wise, reductions and shape ops only.
FLAGS = ("--tf_xla_cpu_global_jit", "--tf_xla_ops_to_cluster=FUSIBLE")


def add_flags():
    """Appends the flags the caller has not set to `TF_XLA_FLAGS` (a user's own values win)."""
    current = os.environ.get("TF_XLA_FLAGS", "")
    missing = [flag for flag in FLAGS if flag.split("=")[0] not in current]
    if missing:
        os.environ["TF_XLA_FLAGS"] = " ".join([current, *missing]).strip()


add_flags()


def cpu_has_amx():
    return "amx_tile" in cpu_flags()


def fusion_enabled(setting, jit_compile=False):
    """`train.xla_fusion` ("on", "off", "auto") as a decision for this machine: auto is on for CPU-only
    training on a CPU with AMX, and off under whole-step XLA, which compiles everything anyway."""
    if setting != "auto":
        return setting == "on"
    return not jit_compile and cpu_has_amx() and not tf.config.list_physical_devices("GPU")


@contextlib.contextmanager
def xla_fusion(enabled):
    """Auto-clusters element-wise ops into XLA kernels in the functions first run inside the block
    (Keras' train, test and predict functions of a `fit`), then restores the previous setting."""
    if not enabled:
        yield
        return
    previous = tf.config.optimizer.get_jit()
    tf.config.optimizer.set_jit("autoclustering")
    try:
        yield
    finally:
        tf.config.optimizer.set_jit(previous or False)
