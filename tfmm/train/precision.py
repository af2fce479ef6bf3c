"""Mixed precision: bfloat16 on CPUs (AMX) and TPUs, float16 with loss scaling on GPUs."""

import functools
from pathlib import Path

import keras
import tensorflow as tf


@functools.cache
def cpu_flags():
    """The CPU's feature flags (Linux' /proc/cpuinfo; empty where that is unreadable)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return frozenset()
    return frozenset(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), ()))


def native_bfloat16():
    """Whether the CPU computes in bfloat16 (AMX or AVX-512 BF16); elsewhere bfloat16 is emulated and
    slower than float32."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def precision_policy(mixed):
    if not mixed:
        return "float32"
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


def set_precision(mixed):
    """Sets the global Keras dtype policy before models are built; returns its name.

    Under `mixed_float16` Keras' `compile` wraps the optimizer in a LossScaleOptimizer.
    Losses, logits, softmax and the contrastive temperature stay float32 in tfmm's layers.
    """
    policy = precision_policy(mixed)
    if policy == "mixed_bfloat16" and not native_bfloat16():
        print("warning: this CPU has no bfloat16 instructions (AMX or AVX-512 BF16): mixed_bfloat16 is emulated "
              "and slower than float32 here")
    keras.mixed_precision.set_global_policy(policy)
    return policy
