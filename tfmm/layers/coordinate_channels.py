import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class CoordinateChannels(keras.layers.Layer):
    """(B, H, W, C) → (B, H, W, C + 2): each pixel's column and row, -1 at the first and 1 at the last (CoordConv,
    Liu et al. 2018). Strided convolutions with "same" padding see where they are only near the border; these
    channels let a region's features say where inside the region its object sits ("left of" within a column of
    regions). No weights; built-in ops only (a constant broadcast over the batch, then a concatenation)."""

    def call(self, images):
        height, width = images.shape[1], images.shape[2]
        columns = ops.broadcast_to(ops.linspace(-1.0, 1.0, width)[None, :], (height, width))
        rows = ops.broadcast_to(ops.linspace(-1.0, 1.0, height)[:, None], (height, width))
        grid = ops.cast(ops.stack([columns, rows], axis=-1), images.dtype)
        batch = ops.shape(images)[0]
        return ops.concatenate([images, ops.broadcast_to(grid[None], (batch, height, width, 2))], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 2)
