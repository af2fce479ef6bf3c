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
    """Where a feature map fits the attribute the words name, from a head's class probabilities at each position
    and the token ids that name each class (`class_token_ids[k]`: ids of the words for class k, e.g. "circle" and
    the first piece of "circles"; [] for a class no word names, such as the background): class k counts as named
    when one of its ids is among the valid tokens; a position fits by `1 - named_any × (1 - Σ_k p_k × named_k)` —
    1 where the words name no class (nothing to check) or the position's class is one they name.

    The words are matched, not learnt: a word classifier trained only through the mask's loss learnt any code
    the decoder could read (its "fit" was 0.01 on the named objects and 0.87 elsewhere), not which class a word
    names. Matched names and heads that tell colours and shapes apart give a fit that holds for colour–shape
    combinations training never showed.

    `call(probabilities (B, H, W, K), token_ids (B, L), padding_mask (B, L))` → (B, H, W, 1) in [0, 1]."""

    def __init__(self, class_token_ids, **kwargs):
        super().__init__(**kwargs)
        self.class_token_ids = [sorted({int(i) for i in ids}) for ids in class_token_ids]
        owners = [(token, k) for k, ids in enumerate(self.class_token_ids) for token in ids]
        if len({token for token, _ in owners}) != len(owners):
            raise ValueError(f"a token names two classes in class_token_ids {self.class_token_ids}")
        self.classes = len(self.class_token_ids)
        self._ids = [token for token, _ in owners]
        self._owner = [[1.0 if k == owner else 0.0 for k in range(self.classes)] for _, owner in owners]

    def call(self, probabilities, token_ids, padding_mask=None):
        if not self._ids:  # no class has a word: nothing is ever named
            return ops.ones_like(probabilities[..., :1])
        dtype = probabilities.dtype
        hits = ops.cast(ops.equal(ops.cast(token_ids, "int32")[..., None], ops.convert_to_tensor(self._ids, "int32")), dtype)
        if padding_mask is not None:
            hits = hits * ops.cast(padding_mask, dtype)[..., None]
        named = ops.minimum(ops.matmul(ops.max(hits, axis=1), ops.convert_to_tensor(self._owner, dtype)), 1.0)  # (B, K)
        matched = ops.sum(probabilities * named[:, None, None, :], axis=-1, keepdims=True)
        named_any = ops.max(named, axis=-1)[:, None, None, None]
        return 1.0 - named_any * (1.0 - matched)

    def compute_output_shape(self, probabilities_shape, token_ids_shape, padding_mask_shape=None):
        return (*probabilities_shape[:-1], 1)

    def get_config(self):
        return {**super().get_config(), "class_token_ids": self.class_token_ids}
