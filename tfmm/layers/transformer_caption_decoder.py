import keras
import keras_hub
from keras import ops
from keras_hub.src.layers.modeling.cached_multi_head_attention import CachedMultiHeadAttention


class _CrossAttentionKeepingWeights(CachedMultiHeadAttention):
    """keras-hub's cached attention that also keeps its last attention weights (without a cache,
    i.e. in teacher-forced passes), so the caption model can show where each word looked."""

    def call(self, query, value, key=None, attention_mask=None, cache=None, cache_update_index=None,
             return_attention_scores=False, training=None):
        if cache is not None or return_attention_scores:
            return super().call(query, value, key, attention_mask, cache, cache_update_index, return_attention_scores,
                                training)
        output, self.last_weights = super().call(query, value, key, attention_mask, return_attention_scores=True,
                                                 training=training)
        return output


@keras.saving.register_keras_serializable(package="tfmm")
class CaptionDecoderBlock(keras_hub.layers.TransformerDecoder):
    """keras-hub's `TransformerDecoder` block; its cross-attention weights are readable after a
    teacher-forced call as `cross_attention_weights` (batch, heads, words, regions)."""

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        super().build(decoder_sequence_shape, encoder_sequence_shape)
        # keras-hub's block does not return its attention weights; the same layer, with the same
        # weights and config, keeps them (a class swap: the block's config and checkpoints are unchanged).
        self._cross_attention_layer.__class__ = _CrossAttentionKeepingWeights

    @property
    def cross_attention_weights(self):
        return self._cross_attention_layer.last_weights


@keras.saving.register_keras_serializable(package="tfmm")
class TransformerCaptionDecoder(keras.layers.Layer):
    """A Transformer decoder over word tokens with cross-attention to the image regions.

    Token and position embeddings (keras-hub), the regions projected to the model width with a
    learnt position per region, `num_layers` keras-hub `TransformerDecoder` blocks (causal self-attention,
    cross-attention, feed-forward; pre-norm), a final norm and the logits.

    `call({"token_ids" (B, L), "regions" (B, R, D)})` → `logits` (B, L, vocabulary) float32 and
    `attention` (B, L, R): the last block's cross-attention, averaged over heads. Decoding uses
    `initial_state` (the regions' keys/values computed once per block, empty self-attention caches
    of `max_length`) and `step`, which costs one position per token (key/value cache).
    """

    def __init__(self, vocabulary_size, sequence_length, num_regions, hidden_dim=128, num_layers=2, num_heads=4,
                 intermediate_dim=256, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.sequence_length, self.num_regions = vocabulary_size, sequence_length, num_regions
        self.hidden_dim, self.num_layers, self.num_heads = hidden_dim, num_layers, num_heads
        self.intermediate_dim, self.dropout_rate = intermediate_dim, dropout
        policy = self.dtype_policy
        self.embedding = keras_hub.layers.TokenAndPositionEmbedding(vocabulary_size, sequence_length, hidden_dim,
                                                                    dtype=policy, name="embedding")
        self.region_projection = keras.layers.Dense(hidden_dim, dtype=policy, name="region_projection")
        self.region_positions = keras_hub.layers.PositionEmbedding(num_regions, dtype=policy, name="region_positions")
        self.blocks = [CaptionDecoderBlock(intermediate_dim, num_heads, dropout=dropout, normalize_first=True,
                                           dtype=policy, name=f"block{i}") for i in range(num_layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="final_norm")
        self.logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    def build(self, input_shape):
        regions = input_shape["regions"]
        batch = regions[0]
        self.embedding.build((batch, None))
        self.region_projection.build(regions)
        memory = (batch, self.num_regions, self.hidden_dim)
        self.region_positions.build(memory)
        for block in self.blocks:
            block.build((batch, None, self.hidden_dim), memory)
        self.final_norm.build((batch, None, self.hidden_dim))
        self.logits.build((batch, None, self.hidden_dim))

    def _memory(self, regions):
        memory = self.region_projection(regions)
        return memory + self.region_positions(memory)

    def call(self, inputs, training=None):
        x = self.embedding(inputs["token_ids"])
        memory = self._memory(inputs["regions"])
        for block in self.blocks:
            x = block(x, memory, training=training)
        weights = ops.mean(self.blocks[-1].cross_attention_weights, axis=1)
        return {"logits": self.logits(self.final_norm(x)), "attention": ops.cast(weights, "float32")}

    def compute_output_spec(self, inputs, training=None):
        batch, length = inputs["token_ids"].shape
        return {"logits": keras.KerasTensor((batch, length, self.vocabulary_size), "float32"),
                "attention": keras.KerasTensor((batch, length, self.num_regions), "float32")}

    def initial_state(self, regions, max_length):
        """Per block: the regions' keys/values (computed once) and an empty self-attention cache."""
        memory = self._memory(regions)
        batch = ops.shape(regions)[0]
        state = {"memory": memory}
        start = ops.zeros((batch, 1, self.hidden_dim), memory.dtype)
        for i, block in enumerate(self.blocks):
            empty_self = ops.zeros((batch, 2, max_length, self.num_heads, self.head_dim), memory.dtype)
            empty_cross = ops.zeros((batch, 2, self.num_regions, self.num_heads, self.head_dim), memory.dtype)
            _, _, cross = block(start, memory, self_attention_cache=empty_self, self_attention_cache_update_index=0,
                                cross_attention_cache=empty_cross, cross_attention_cache_update_index=0)
            state[f"self_cache{i}"], state[f"cross_cache{i}"] = empty_self, cross
        return state

    def step(self, token_ids, state, index):
        x = self.embedding(token_ids[:, None], start_index=index)
        state = dict(state)
        for i, block in enumerate(self.blocks):
            x, state[f"self_cache{i}"], _ = block(
                x, state["memory"], self_attention_cache=state[f"self_cache{i}"], self_attention_cache_update_index=index,
                cross_attention_cache=state[f"cross_cache{i}"], cross_attention_cache_update_index=None)
        return self.logits(self.final_norm(x))[:, 0], state

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "sequence_length": self.sequence_length,
                "num_regions": self.num_regions, "hidden_dim": self.hidden_dim, "num_layers": self.num_layers,
                "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim, "dropout": self.dropout_rate}
