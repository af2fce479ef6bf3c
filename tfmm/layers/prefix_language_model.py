"""A keras-hub decoder-only language model that reads a prefix of embeddings (image tokens) before its words.

keras-hub's causal LMs embed token ids only; LLaVA puts projected image features in front of the word
embeddings. This layer drives the backbone's own parts (embeddings, decoder blocks with their key/value
caches, final norm, tied output embedding) so any GPT-2 or Gemma backbone, built from a config or loaded from a
local preset, can take the prefix. Positions count from the first image token.
"""

import keras
import keras_hub
from keras import ops

from tfmm.errors import TfmmError


def family_of(backbone):
    """"gpt2" or "gemma"; another model is an error naming it."""
    if isinstance(backbone, keras_hub.models.GPT2Backbone):
        return "gpt2"
    if isinstance(backbone, keras_hub.models.GemmaBackbone):
        return "gemma"
    raise TfmmError(f"the language model must be a keras-hub GPT-2 or Gemma backbone, got {type(backbone).__name__}")


@keras.saving.register_keras_serializable(package="tfmm")
class PrefixLanguageModel(keras.layers.Layer):
    """`call(prefix (B, P, H), token_ids (B, L), padding_mask (B, L))` → logits (B, L, vocabulary) float32 for
    the word positions: causal attention over the prefix and the words before each one.

    Decoding: `initial_state(prefix, max_length)` runs the prefix once into per-block key/value caches of
    P + `max_length` positions; `step(token_ids (B,), state, index)` adds the word at `index` (0 = the first word
    after the prefix) and returns its next-token logits."""

    def __init__(self, backbone, **kwargs):
        if isinstance(backbone, dict):
            backbone = keras.layers.deserialize(backbone)
        super().__init__(**kwargs)
        self.backbone, self.family = backbone, family_of(backbone)

    @property
    def hidden_dim(self):
        return self.backbone.hidden_dim

    def build(self, prefix_shape, token_ids_shape=None, padding_mask_shape=None):
        self.built = True  # the backbone was built when it was made

    def embed(self, token_ids):
        """Word embeddings of `token_ids` (no positions: `initial_state` and `step` add them where they sit)."""
        b = self.backbone
        x = b.token_embedding(token_ids)
        if self.family == "gemma":
            return x * ops.cast(ops.sqrt(b.hidden_dim), x.dtype)
        return x  # GPT-2's learnt positions are added over the whole sequence, prefix included (`_positions`)

    def _positions(self, x, start_index):
        if self.family == "gemma":  # rotary positions, inside the attention, from the cache index
            return x
        return self.backbone.embeddings_add((x, self.backbone.position_embedding(x, start_index=start_index)))

    def _block(self, block, x, padding_mask=None, cache=None, index=None):
        if self.family == "gemma":
            if cache is None:
                return block(x, padding_mask=padding_mask), None
            return block(x, cache=cache, cache_update_index=index)
        if cache is None:
            return block(x, decoder_padding_mask=padding_mask), None
        return block(x, self_attention_cache=cache, self_attention_cache_update_index=index)

    def _logits(self, x):
        return ops.cast(self.backbone.token_embedding(self.backbone.layer_norm(x), reverse=True), "float32")

    def call(self, prefix, token_ids, padding_mask, training=None):
        words = self.embed(token_ids)
        x = self._positions(ops.concatenate([ops.cast(prefix, words.dtype), words], axis=1), 0)
        mask = ops.concatenate([ops.ones(ops.shape(prefix)[:2], "bool"), ops.cast(padding_mask, "bool")], axis=1)
        for block in self.backbone.transformer_layers:
            x, _ = self._block(block, x, padding_mask=mask)
        return self._logits(x[:, ops.shape(prefix)[1]:])

    def empty_cache(self, batch, length, dtype):
        block = self.backbone.transformer_layers[0]
        if self.family == "gemma":
            heads, head_dim = self.backbone.num_key_value_heads, self.backbone.head_dim
        else:
            heads, head_dim = block.num_heads, self.hidden_dim // block.num_heads
        return ops.zeros((batch, 2, length, heads, head_dim), dtype)

    def initial_state(self, prefix, max_length):
        """{"cache{i}": key/values of the prefix, room for `max_length` words; "prefix_length"}."""
        batch, length = ops.shape(prefix)[0], ops.shape(prefix)[1]
        dtype = self.backbone.token_embedding.compute_dtype
        x = self._positions(ops.cast(prefix, dtype), 0)
        state = {}
        for i, block in enumerate(self.backbone.transformer_layers):
            x, state[f"cache{i}"] = self._block(block, x, cache=self.empty_cache(batch, length + max_length, dtype),
                                                index=0)
        state["prefix_length"] = ops.full((batch,), length, "int32")  # batch-first, as tfmm.decoding keeps state
        return state

    def step(self, token_ids, state, index):
        start = state["prefix_length"][0] + index
        x = self._positions(self.embed(token_ids[:, None]), start)
        state = dict(state)
        for i, block in enumerate(self.backbone.transformer_layers):
            x, state[f"cache{i}"] = self._block(block, x, cache=state[f"cache{i}"], index=start)
        return self._logits(x)[:, 0], state

    def get_config(self):
        return {**super().get_config(), "backbone": keras.layers.serialize(self.backbone)}
