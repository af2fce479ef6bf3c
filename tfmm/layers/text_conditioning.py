"""Ways a feature map listens to text: FiLM from the sentence embedding, and cross-attention of the image
positions to the words (the segment app's U-Nets)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class FiLM(keras.layers.Layer):
    """Feature-wise linear modulation (Perez et al. 2018): `features * (1 + γ(s)) + β(s)` for a sentence
    embedding s, γ and β linear maps that start at zero (the layer starts as the identity).

    `call(features (B, H, W, C), sentence (B, D))` → (B, H, W, C)."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.gamma = keras.layers.Dense(channels, kernel_initializer="zeros", dtype=self.dtype_policy, name="gamma")
        self.beta = keras.layers.Dense(channels, kernel_initializer="zeros", dtype=self.dtype_policy, name="beta")

    def build(self, features_shape, sentence_shape):
        self.gamma.build(sentence_shape)
        self.beta.build(sentence_shape)

    def call(self, features, sentence):
        gamma = self.gamma(sentence)[:, None, None, :]
        beta = self.beta(sentence)[:, None, None, :]
        return features * (1.0 + gamma) + beta

    def compute_output_shape(self, features_shape, sentence_shape):
        return features_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="tfmm")
class WordAttention(keras.layers.Layer):
    """Every position of a feature map attends to the words (pre-norm cross-attention with a residual), so a
    region can look up the word that names it.

    `call(features (B, H, W, C), words (B, L, D), padding_mask (B, L))` → (B, H, W, C)."""

    def __init__(self, num_heads=4, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=self.dtype_policy, name="norm")

    def build(self, features_shape, words_shape, padding_mask_shape=None):
        channels = features_shape[-1]
        self.attention = keras.layers.MultiHeadAttention(self.num_heads, max(channels // self.num_heads, 8),
                                                         output_shape=channels, dtype=self.dtype_policy, name="attention")
        flat = (features_shape[0], None, channels)
        self.norm.build(flat)
        self.attention.build(flat, words_shape, words_shape)

    def call(self, features, words, padding_mask=None):
        shape = ops.shape(features)
        flat = ops.reshape(features, (shape[0], shape[1] * shape[2], shape[3]))
        mask = None if padding_mask is None else ops.cast(padding_mask, "bool")[:, None, :]
        attended = self.attention(self.norm(flat), words, words, attention_mask=mask)
        return ops.reshape(flat + attended, shape)

    def compute_output_shape(self, features_shape, words_shape, padding_mask_shape=None):
        return features_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package="tfmm")
class AttributeFit(keras.layers.Layer):
    """Where a feature map fits the attribute the words name, from a head's class probabilities at each position:
    each word gets a distribution over the `classes` plus "none of them"; a class counts as named by its most
    confident word; a position fits by `1 - named_any × (1 - Σ_k p_k × named_k)` — 1 where the words name no class
    (nothing to check) or the position's class is one they name. It reads each word and each position on its own, so
    a colour and a shape it knows apart fit in combinations it never saw together.

    `call(probabilities (B, H, W, K), words (B, L, D), padding_mask (B, L))` → (B, H, W, 1) in [0, 1]."""

    def __init__(self, classes, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.classify = keras.layers.Dense(classes + 1, dtype=self.dtype_policy, name="classify")

    def build(self, probabilities_shape, words_shape, padding_mask_shape=None):
        self.classify.build(words_shape)

    def call(self, probabilities, words, padding_mask=None):
        per_word = ops.softmax(self.classify(words))[..., : self.classes]
        if padding_mask is not None:
            per_word = per_word * ops.cast(padding_mask, per_word.dtype)[..., None]
        named = ops.max(per_word, axis=1)  # (B, K)
        matched = ops.sum(ops.cast(probabilities, named.dtype) * named[:, None, None, :], axis=-1, keepdims=True)
        named_any = ops.max(named, axis=-1)[:, None, None, None]
        return 1.0 - named_any * (1.0 - matched)

    def compute_output_shape(self, probabilities_shape, words_shape, padding_mask_shape=None):
        return (*probabilities_shape[:-1], 1)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}
