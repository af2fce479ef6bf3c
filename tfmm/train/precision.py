"""Mixed precision: bfloat16 on CPUs (AMX) and TPUs, float16 with loss scaling on GPUs."""

import keras
import tensorflow as tf


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
    keras.mixed_precision.set_global_policy(policy)
    return policy
