"""The two networks of the text-to-image GAN (AttnGAN / DF-GAN family), each a keras-hub `Backbone`:

- `GANGeneratorBackbone`: prompt word pieces + noise → image in 0..1. A sentence vector and the noise make a
  4×4 map; each up-sampling block modulates its features by the sentence (FiLM) and, at the sizes in
  `attention_sizes`, lets every position attend to the words (AttnGAN's word-level attention), so a region
  can draw what the word that names it says.
- `GANDiscriminator`: image + prompt → one realness-and-match score. Its own text encoder; the image's 8×8
  regions attend to the words, and the 4×4 map is joined with the sentence before the score (flattened, not
  pooled: "left of" is a matter of where). Trained matching-aware: a real image with another image's prompt
  counts as fake.
"""

import math

import keras
import keras_hub
from keras import ops

from tfmm.encoders.transformer_text_encoder import TransformerTextEncoder
from tfmm.layers.text_conditioning import FiLM, WordAttention


@keras.saving.register_keras_serializable(package="tfmm")
class SlopedReLU(keras.layers.Layer):
    """Leaky ReLU written as max(x, αx). The discriminator's R1 penalty differentiates it twice, and Grappler's
    remapper, fusing Conv2D + BiasAdd + LeakyRelu, drops a node that second gradient still reads ("remapper
    failed" on every trace); a Maximum is not fused."""

    def __init__(self, slope=0.2, **kwargs):
        super().__init__(**kwargs)
        self.slope = slope

    def call(self, x):
        return ops.maximum(x, self.slope * x)

    def get_config(self):
        return {**super().get_config(), "slope": self.slope}


def _text_encoder(vocabulary_size, sequence_length, text_dim, text_layers, heads, dtype, name):
    return TransformerTextEncoder(vocabulary_size, sequence_length, hidden_dim=text_dim, num_layers=text_layers,
                                  num_heads=heads, intermediate_dim=2 * text_dim, dtype=dtype, name=name)


def _text_inputs(sequence_length):
    return (keras.Input((sequence_length,), dtype="int32", name="text_ids"),
            keras.Input((sequence_length,), dtype="int32", name="padding_mask"))


@keras.saving.register_keras_serializable(package="tfmm")
class GANGeneratorBackbone(keras_hub.models.Backbone):
    """`{"text_ids", "padding_mask"} (B, L) int32, "noise" (B, noise_dim)` → `{"images"}` (B, S, S, 3) in 0..1."""

    def __init__(self, vocabulary_size, sequence_length, image_size=32, noise_dim=64, channels=256, text_dim=128,
                 text_layers=2, attention_heads=2, attention_sizes=(8, 16), dtype=None, **kwargs):
        blocks = int(math.log2(image_size // 4))
        if image_size != 4 * 2 ** blocks:
            raise ValueError(f"the GAN draws 4·2^k-pixel images (8, 16, 32, 64, ...), not {image_size}")
        text_ids, padding_mask = _text_inputs(sequence_length)
        noise = keras.Input((noise_dim,), name="noise")
        text = _text_encoder(vocabulary_size, sequence_length, text_dim, text_layers, attention_heads, dtype,
                             "text_encoder")({"token_ids": text_ids, "padding_mask": padding_mask})
        words, sentence = text["sequence_output"], text["pooled_output"]
        x = keras.layers.Concatenate(dtype=dtype)([noise, sentence])
        x = keras.layers.Dense(16 * channels, dtype=dtype, name="seed_map")(x)
        x = keras.layers.Reshape((4, 4, channels), dtype=dtype)(x)
        x = keras.layers.ReLU(dtype=dtype)(keras.layers.BatchNormalization(dtype=dtype, name="seed_norm")(x))
        size, width = 4, channels
        for block in range(blocks):
            # Batch norm then FiLM by the sentence (conditional batch norm, as in BigGAN): normalised features keep
            # the output away from tanh's flat ends, where an unnormalised generator got stuck drawing black.
            size, width = size * 2, max(width // 2, 16)
            x = keras.layers.UpSampling2D(2, dtype=dtype, name=f"up{block}")(x)
            shortcut = keras.layers.Conv2D(width, 1, dtype=dtype, name=f"block{block}_shortcut")(x)
            for conv in range(2):
                x = keras.layers.Conv2D(width, 3, padding="same", dtype=dtype, name=f"block{block}_conv{conv}")(x)
                x = keras.layers.BatchNormalization(dtype=dtype, name=f"block{block}_norm{conv}")(x)
                x = FiLM(width, dtype=dtype, name=f"block{block}_film{conv}")(x, sentence)
                x = keras.layers.ReLU(dtype=dtype)(x)
                if conv == 0 and size in attention_sizes:
                    x = WordAttention(attention_heads, dtype=dtype, name=f"block{block}_words")(x, words, padding_mask)
            x = keras.layers.Add(dtype=dtype)([x, shortcut])
        x = keras.layers.ReLU(dtype=dtype)(keras.layers.BatchNormalization(dtype=dtype, name="out_norm")(x))
        x = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", dtype=dtype, name="to_rgb")(x)
        images = keras.layers.Rescaling(0.5, offset=0.5, dtype="float32", name="images")(x)  # float32 under mixed precision
        super().__init__(inputs={"text_ids": text_ids, "padding_mask": padding_mask, "noise": noise},
                         outputs={"images": images}, dtype=dtype, **kwargs)
        self.vocabulary_size, self.sequence_length, self.image_size = vocabulary_size, sequence_length, image_size
        self.noise_dim, self.channels, self.text_dim, self.text_layers = noise_dim, channels, text_dim, text_layers
        self.attention_heads, self.attention_sizes = attention_heads, tuple(attention_sizes)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "sequence_length": self.sequence_length,
                "image_size": self.image_size, "noise_dim": self.noise_dim, "channels": self.channels,
                "text_dim": self.text_dim, "text_layers": self.text_layers, "attention_heads": self.attention_heads,
                "attention_sizes": list(self.attention_sizes)}


@keras.saving.register_keras_serializable(package="tfmm")
class GANDiscriminator(keras_hub.models.Backbone):
    """`{"images" (B, S, S, 3) in 0..1, "text_ids", "padding_mask"}` → `{"logits"}` (B,): high for a real image
    that matches its prompt."""

    def __init__(self, vocabulary_size, sequence_length, image_size=32, channels=256, text_dim=128, text_layers=2,
                 attention_heads=2, dtype=None, **kwargs):
        text_ids, padding_mask = _text_inputs(sequence_length)
        images = keras.Input((image_size, image_size, 3), name="images")
        text = _text_encoder(vocabulary_size, sequence_length, text_dim, text_layers, attention_heads, dtype,
                             "text_encoder")({"token_ids": text_ids, "padding_mask": padding_mask})
        words, sentence = text["sequence_output"], text["pooled_output"]
        x = keras.layers.Rescaling(2.0, offset=-1.0, dtype=dtype)(images)
        # Widths double as the map halves, to `channels` at 4×4 (16 at 32 px for 128 channels).
        size, width = image_size, max(channels // (image_size // 4), 16)
        x = keras.layers.Conv2D(width, 3, padding="same", dtype=dtype, name="stem")(x)
        x = SlopedReLU(0.2, dtype=dtype)(x)
        while size > 4:
            size, width = size // 2, min(width * 2, channels)
            x = keras.layers.Conv2D(width, 4, strides=2, padding="same", dtype=dtype, name=f"down{size}")(x)
            x = SlopedReLU(0.2, dtype=dtype)(x)
            if size == 8:
                x = WordAttention(attention_heads, dtype=dtype, name="words8")(x, words, padding_mask)
        tiled = keras.layers.RepeatVector(16, dtype=dtype)(keras.layers.Dense(text_dim, dtype=dtype, name="sentence")(sentence))
        x = keras.layers.Concatenate(dtype=dtype)([x, keras.layers.Reshape((4, 4, text_dim), dtype=dtype)(tiled)])
        x = keras.layers.Conv2D(channels, 3, padding="same", dtype=dtype, name="joint")(x)
        x = SlopedReLU(0.2, dtype=dtype)(x)
        x = keras.layers.Flatten(dtype=dtype)(x)
        logits = keras.layers.Dense(1, dtype="float32", name="score")(x)
        logits = keras.layers.Reshape((), dtype="float32", name="logits")(logits)
        super().__init__(inputs={"images": images, "text_ids": text_ids, "padding_mask": padding_mask},
                         outputs={"logits": logits}, dtype=dtype, **kwargs)
        self.vocabulary_size, self.sequence_length, self.image_size = vocabulary_size, sequence_length, image_size
        self.channels, self.text_dim, self.text_layers, self.attention_heads = channels, text_dim, text_layers, attention_heads

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "sequence_length": self.sequence_length,
                "image_size": self.image_size, "channels": self.channels, "text_dim": self.text_dim,
                "text_layers": self.text_layers, "attention_heads": self.attention_heads}
