import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class TokenPooling(keras.layers.Layer):
    """Pools a (batch, tokens, dim) sequence to (batch, dim).

    `mode="mean"` averages the tokens that `padding_mask` marks as real (all tokens
    when no mask is given); `mode="first"` takes the first token (a class token).
    """

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("mean", "first"):
            raise ValueError(f"TokenPooling mode must be 'mean' or 'first', got {mode!r}")
        self.mode = mode

    def call(self, sequence, padding_mask=None):
        if self.mode == "first":
            return sequence[:, 0, :]
        if padding_mask is None:
            return ops.mean(sequence, axis=1)
        weights = ops.cast(padding_mask, sequence.dtype)[:, :, None]
        total = ops.sum(sequence * weights, axis=1)
        return total / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
