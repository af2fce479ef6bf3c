import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfmm.models.image_preprocessor import ImagePreprocessor
from tfmm.models.task import Task, check_images
from tfmm.models.vqvae_backbone import VQVAEBackbone


@keras.saving.register_keras_serializable(package="tfmm")
class PSNR(keras.metrics.Mean):
    """Mean peak signal-to-noise ratio per image (images in 0..1), in dB."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        mse = ops.mean(ops.square(ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")), axis=(1, 2, 3))
        return super().update_state(-10.0 * ops.log(ops.maximum(mse, 1e-10)) / math.log(10.0), sample_weight)


@keras.saving.register_keras_serializable(package="tfmm")
class CodebookUsage(keras.metrics.Metric):
    """Over all tokens seen: the share of codes used at least once (`codebook_usage`) and the
    perplexity of the code distribution (`perplexity`: the number of equally used codes it equals)."""

    def __init__(self, num_codes, name="codebook", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_codes = num_codes
        self.counts = self.add_variable(shape=(num_codes,), initializer="zeros", name="counts")

    def update_state(self, indices, sample_weight=None):
        self.counts.assign_add(ops.sum(ops.one_hot(ops.reshape(indices, (-1,)), self.num_codes), axis=0))

    def result(self):
        share = self.counts / ops.maximum(ops.sum(self.counts), 1.0)
        entropy = -ops.sum(share * ops.log(ops.maximum(share, 1e-12)))
        return {"codebook_usage": ops.mean(ops.cast(self.counts > 0, "float32")), "perplexity": ops.exp(entropy)}

    def reset_state(self):
        self.counts.assign(ops.zeros_like(self.counts))

    def get_config(self):
        return {**super().get_config(), "num_codes": self.num_codes}


def edge_loss(images, reconstruction):
    """Mean squared error of the vertical plus that of the horizontal neighbour differences of (B, H, W, C) images."""
    def rows(t):
        return t[:, 1:] - t[:, :-1]

    def columns(t):
        return t[:, :, 1:] - t[:, :, :-1]

    return sum(ops.mean(ops.square(d(images) - d(reconstruction))) for d in (rows, columns))


def to_uint8(images):
    return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)


@keras.saving.register_keras_serializable(package="tfmm")
class VQVAE(Task):
    """Stage 1 of text-to-image: a `VQVAEBackbone` that turns images into tokens and back.

    `fit` on raw `{"images"}` batches (the preprocessor converts them; the target is the input):
    reconstruction MSE plus the quantiser's losses, plus `edge_weight` × the MSE of the images' horizontal and
    vertical pixel differences (`edge_loss`: outlines, which decide what shape a small object reads as, are few
    pixels of the plain MSE); metrics `mse`, `psnr`, `codebook_usage`, `perplexity`. Raw inputs:
    `encode(images)` → token grids, `decode(tokens)` → uint8 images.
    """

    backbone_cls = VQVAEBackbone
    preprocessor_cls = ImagePreprocessor

    def __init__(self, backbone, preprocessor=None, edge_weight=0.0, **kwargs):
        self.backbone, self.preprocessor = backbone, preprocessor
        inputs = backbone.input
        super().__init__(inputs=inputs, outputs=backbone(inputs), **kwargs)
        self.edge_weight = float(edge_weight)
        self.mse = keras.metrics.Mean(name="mse")
        self.psnr = PSNR(name="psnr")
        self.usage = CodebookUsage(backbone.num_codes)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images = ops.cast(x["images"], "float32")
        loss = ops.mean(ops.square(images - y_pred["reconstruction"])) + sum(self.losses)
        if self.edge_weight:
            loss = loss + self.edge_weight * edge_loss(images, y_pred["reconstruction"])
        return loss

    def get_config(self):
        return {**super().get_config(), "edge_weight": self.edge_weight}

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.mse.update_state(ops.mean(ops.square(ops.cast(x["images"], "float32") - y_pred["reconstruction"])))
        self.psnr.update_state(x["images"], y_pred["reconstruction"])
        self.usage.update_state(y_pred["indices"])
        return self.get_metrics_result()

    def encode(self, images, batch_size=128):
        """Raw images → token grids (n, g, g) int32."""
        def run(images):
            return {"tokens": self.backbone.encode(self.preprocessor.convert_images(images))}

        return self.run_in_batches(self.graph_function("encode", run), {"images": check_images(images)}, batch_size)["tokens"]

    def decode(self, tokens, batch_size=128):
        """Token grids (n, g, g) → uint8 images (n, S, S, 3)."""
        def run(tokens):
            return {"images": to_uint8(self.backbone.decode(tokens))}

        tokens = np.asarray(tokens, np.int32)
        return self.run_in_batches(self.graph_function("decode", run), {"tokens": tokens}, batch_size)["images"]
