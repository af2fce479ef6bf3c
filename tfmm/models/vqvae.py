import math

import keras
from keras import ops

from tfmm.layers.vector_quantizer import VectorQuantizer
from tfmm.models.task import Task


def _residual_block(x, width, name):
    y = keras.layers.Activation("relu", name=f"{name}_act0")(x)
    y = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv0")(y)
    y = keras.layers.Activation("relu", name=f"{name}_act1")(y)
    y = keras.layers.Conv2D(x.shape[-1], 1, name=f"{name}_conv1")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


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


@keras.saving.register_keras_serializable(package="tfmm")
class VQVAE(Task):
    """A convolutional VQ-VAE: images ↔ grids of codebook indices (image tokens).

    Encoder: a stem conv, `log2(downsample)` strided convs, residual blocks, a 1×1 conv to `code_dim`;
    `VectorQuantizer`; decoder: the mirror image with transposed convs, sigmoid output in 0..1.
    Inputs `images` (batch, S, S, 3) float 0..1; outputs `reconstruction` and `indices`
    (batch, S/downsample, S/downsample). Trained with `model.fit(images, images)`: reconstruction MSE
    plus the quantiser's losses; metrics `mse`, `psnr`, `codebook_usage`, `perplexity`.
    `encode(images)` → indices, `decode(indices)` → images.
    """

    def __init__(self, image_size=64, downsample=8, hidden_dim=128, residual_blocks=2, num_codes=256, code_dim=64,
                 beta=0.25, ema_decay=0.99, **kwargs):
        if downsample not in (4, 8):
            raise ValueError(f"downsample must be 4 or 8, got {downsample}")
        steps = int(math.log2(downsample))
        images = keras.Input((image_size, image_size, 3), name="images")
        x = keras.layers.Rescaling(2.0, offset=-1.0, name="rescale")(images)
        x = keras.layers.Conv2D(hidden_dim // 2, 3, padding="same", name="stem")(x)
        for i in range(steps):
            x = keras.layers.Conv2D(hidden_dim, 4, strides=2, padding="same", activation="relu" if i < steps - 1 else None,
                                    name=f"down{i}")(x)
        for i in range(residual_blocks):
            x = _residual_block(x, hidden_dim // 2, f"encoder_block{i}")
        x = keras.layers.Activation("relu", name="encoder_act")(x)
        z = keras.layers.Conv2D(code_dim, 1, name="to_codes")(x)
        self.encoder = keras.Model(images, z, name="encoder")

        grid = image_size // downsample
        codes = keras.Input((grid, grid, code_dim), name="codes")
        x = keras.layers.Conv2D(hidden_dim, 3, padding="same", name="from_codes")(codes)
        for i in range(residual_blocks):
            x = _residual_block(x, hidden_dim // 2, f"decoder_block{i}")
        x = keras.layers.Activation("relu", name="decoder_act")(x)
        for i in range(steps):
            width = hidden_dim if i < steps - 1 else hidden_dim // 2
            x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", activation="relu", name=f"up{i}")(x)
        x = keras.layers.Conv2D(3, 3, padding="same", name="to_pixels")(x)
        pixels = keras.layers.Activation("sigmoid", dtype="float32", name="pixels")(x)
        self.decoder = keras.Model(codes, pixels, name="decoder")

        self.quantizer = VectorQuantizer(num_codes, code_dim, beta=beta, ema_decay=ema_decay, name="quantizer")
        quantized = self.quantizer(self.encoder(images))
        reconstruction = keras.layers.Identity(dtype="float32", name="reconstruction")(self.decoder(quantized["quantized"]))
        super().__init__(inputs={"images": images},
                         outputs={"reconstruction": reconstruction, "indices": quantized["indices"]}, **kwargs)
        self.image_size, self.downsample, self.hidden_dim, self.residual_blocks = image_size, downsample, hidden_dim, residual_blocks
        self.num_codes, self.code_dim, self.beta, self.ema_decay = num_codes, code_dim, beta, ema_decay
        self.mse = keras.metrics.Mean(name="mse")
        self.psnr = PSNR(name="psnr")
        self.usage = CodebookUsage(num_codes)

    @property
    def grid_size(self):
        return self.image_size // self.downsample

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        mse = ops.mean(ops.square(ops.cast(y, "float32") - y_pred["reconstruction"]))
        return mse + sum(self.losses)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.mse.update_state(ops.mean(ops.square(ops.cast(y, "float32") - y_pred["reconstruction"])))
        self.psnr.update_state(y, y_pred["reconstruction"])
        self.usage.update_state(y_pred["indices"])
        return self.get_metrics_result()

    def encode(self, images):
        """Images (batch, S, S, 3) 0..1 → token grids (batch, g, g) int32."""
        z = self.encoder(images, training=False)
        flat = ops.reshape(ops.cast(z, "float32"), (-1, self.code_dim))
        return ops.reshape(self.quantizer.nearest(flat), ops.shape(z)[:-1])

    def decode(self, indices):
        """Token grids (batch, g, g) int → images (batch, S, S, 3) float 0..1."""
        return self.decoder(self.quantizer.lookup(ops.cast(indices, "int32")), training=False)

    def get_config(self):
        return {"name": self.name, "image_size": self.image_size, "downsample": self.downsample,
                "hidden_dim": self.hidden_dim, "residual_blocks": self.residual_blocks, "num_codes": self.num_codes,
                "code_dim": self.code_dim, "beta": self.beta, "ema_decay": self.ema_decay}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
