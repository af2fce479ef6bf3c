"""Layers for groups along the second axis: the questions asked about one image, the frames of one clip.

A VQA batch holds `images` (batch, ...) and questions (batch, questions, tokens). The
question encoder runs on the folded (batch · questions, tokens) view; the image features
are computed once per image and repeated for its questions; answers unfold back to
(batch, questions, ...). With one question per image these are reshapes that cost nothing.
A clip (batch, frames, H, W, 3) folds the same way so the image encoder runs per frame
(what `TimeDistributed` does, but for encoders that return a dict of outputs).
"""

import keras
from keras import ops


def _rest(shape):
    return tuple(shape[1:])


@keras.saving.register_keras_serializable(package="tfmm")
class FoldGroups(keras.layers.Layer):
    """(batch, group, ...) → (batch · group, ...)."""

    def call(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (-1, *shape[2:]))

    def compute_output_shape(self, shape):
        count = None if shape[0] is None or shape[1] is None else shape[0] * shape[1]
        return (count, *shape[2:])


@keras.saving.register_keras_serializable(package="tfmm")
class RepeatForGroups(keras.layers.Layer):
    """Per-item features (batch, ...) → (batch · group, ...), given the groups (batch, group, ...)."""

    def call(self, x, groups):
        count = ops.shape(groups)[1]
        shape = ops.shape(x)
        expanded = ops.expand_dims(x, 1)
        tiled = ops.broadcast_to(expanded, (shape[0], count, *shape[1:]))
        return ops.reshape(tiled, (-1, *shape[1:]))

    def compute_output_shape(self, x_shape, groups_shape):
        return (None, *_rest(x_shape))


@keras.saving.register_keras_serializable(package="tfmm")
class UnfoldGroups(keras.layers.Layer):
    """(batch · group, ...) → (batch, group, ...), given the groups (batch, group, ...)."""

    def call(self, x, groups):
        shape = ops.shape(groups)
        return ops.reshape(x, (shape[0], shape[1], *ops.shape(x)[1:]))

    def compute_output_shape(self, x_shape, groups_shape):
        return (groups_shape[0], groups_shape[1], *_rest(x_shape))
