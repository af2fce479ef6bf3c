import math

import keras
import keras_hub
from keras import ops

from tfmm.layers.vector_quantizer import VectorQuantizer


def _residual_block(x, width, name):
    y = keras.layers.Activation("relu", name=f"{name}_act0")(x)
    y = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv0")(y)
    y = keras.layers.Activation("relu", name=f"{name}_act1")(y)
    y = keras.layers.Conv2D(x.shape[-1], 1, name=f"{name}_conv1")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


@keras.saving.register_keras_serializable(package="tfmm")
class VQVAEBackbone(keras_hub.models.Backbone):
    """A convolutional VQ-VAE: images ↔ grids of codebook indices (image tokens).

    Encoder: a stem conv, `log2(downsample)` strided convs, residual blocks, a 1×1 conv to `code_dim`;
    `VectorQuantizer` (straight-through, commitment `beta`, EMA codebook with dead-code restarts or a
    codebook learnt by gradient when `ema_decay` is 0); decoder: the mirror image with transposed convs,
    sigmoid output in 0..1. Inputs `images` (batch, S, S, 3) float 0..1; outputs `reconstruction` and
    `indices` (batch, S/downsample, S/downsample). `encode(images)` → indices, `decode(indices)` → images.
    """

    def __init__(self, image_size=64, downsample=8, hidden_dim=128, residual_blocks=2, num_codes=256, code_dim=64,
                 beta=0.25, ema_decay=0.99, dtype=None, **kwargs):
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
        super().__init__(inputs={"images": images}, outputs={"reconstruction": reconstruction, "indices": quantized["indices"]},
                         dtype=dtype, **kwargs)
        self.image_size, self.downsample, self.hidden_dim, self.residual_blocks = image_size, downsample, hidden_dim, residual_blocks
        self.num_codes, self.code_dim, self.beta, self.ema_decay = num_codes, code_dim, beta, ema_decay

    @property
    def grid_size(self):
        return self.image_size // self.downsample

    def encode(self, images):
        """Float images (batch, S, S, 3) 0..1 → token grids (batch, g, g) int32."""
        z = self.encoder(images, training=False)
        flat = ops.reshape(ops.cast(z, "float32"), (-1, self.code_dim))
        return ops.reshape(self.quantizer.nearest(flat), ops.shape(z)[:-1])

    def decode(self, indices):
        """Token grids (batch, g, g) int → float images (batch, S, S, 3) 0..1."""
        return self.decoder(self.quantizer.lookup(ops.cast(indices, "int32")), training=False)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, downsample=self.downsample, hidden_dim=self.hidden_dim,
                      residual_blocks=self.residual_blocks, num_codes=self.num_codes, code_dim=self.code_dim,
                      beta=self.beta, ema_decay=self.ema_decay)
        return config
