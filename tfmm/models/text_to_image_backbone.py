import keras
import keras_hub
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class TextToImageBackbone(keras_hub.models.Backbone):
    """DALL-E-style stage 2: one causal Transformer over a prompt's text tokens followed by an image's
    VQ-VAE tokens in raster order.

    Text and image tokens have their own embeddings and positions (keras-hub `TokenAndPositionEmbedding`);
    the image part starts with a start code (`num_codes`), and the shared stack of keras-hub
    `TransformerDecoder` blocks (causal self-attention only) predicts each image token from the text and
    the image tokens before it. Inputs `text_ids` (batch, text_length) and `image_ids` (batch, image_tokens);
    output `logits` (batch, image_tokens, num_codes), float32.

    For decoding, `prefill` runs the text once into per-block key/value caches and `step` then costs one
    position per image token; `step_without_cache` re-runs the whole sequence (kept to measure what the
    cache saves).
    """

    def __init__(self, text_vocabulary_size, text_length, num_codes, image_tokens, hidden_dim=256, num_layers=4,
                 num_heads=4, intermediate_dim=512, dropout=0.1, dtype=None, **kwargs):
        text_ids = keras.Input((text_length,), dtype="int32", name="text_ids")
        image_ids = keras.Input((image_tokens,), dtype="int32", name="image_ids")
        self.text_embedding = keras_hub.layers.TokenAndPositionEmbedding(text_vocabulary_size, text_length, hidden_dim,
                                                                         dtype=dtype, name="text_embedding")
        self.image_embedding = keras_hub.layers.TokenAndPositionEmbedding(num_codes + 1, image_tokens, hidden_dim,
                                                                          dtype=dtype, name="image_embedding")
        self.blocks = [keras_hub.layers.TransformerDecoder(intermediate_dim, num_heads, dropout=dropout,
                                                           normalize_first=True, dtype=dtype, name=f"block{i}")
                       for i in range(num_layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=dtype, name="final_norm")
        self.head = keras.layers.Dense(num_codes, dtype="float32", name="logits")
        shifted = keras.layers.Concatenate(name="start_then_image")(
            [ops.full_like(image_ids[:, :1], num_codes), image_ids[:, :-1]])
        x = keras.layers.Concatenate(axis=1, name="text_then_image")(
            [self.text_embedding(text_ids), self.image_embedding(shifted)])
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.final_norm(x)[:, text_length:])
        super().__init__(inputs={"text_ids": text_ids, "image_ids": image_ids}, outputs={"logits": logits}, dtype=dtype,
                         **kwargs)
        self.text_vocabulary_size, self.text_length, self.num_codes = text_vocabulary_size, text_length, num_codes
        self.image_tokens, self.hidden_dim, self.num_layers = image_tokens, hidden_dim, num_layers
        self.num_heads, self.intermediate_dim, self.dropout = num_heads, intermediate_dim, dropout

    @property
    def start_code(self):
        return self.num_codes

    def _cache(self, batch):
        total = self.text_length + self.image_tokens
        return ops.zeros((batch, 2, total, self.num_heads, self.hidden_dim // self.num_heads), self.compute_dtype)

    def prefill(self, text_ids):
        """Runs the text once and keeps every block's keys and values: the state `step` continues from."""
        x = self.text_embedding(text_ids)
        state = {}
        for i, block in enumerate(self.blocks):
            x, state[f"cache{i}"] = block(x, self_attention_cache=self._cache(ops.shape(text_ids)[0]),
                                          self_attention_cache_update_index=0)
        return state

    def step(self, token_ids, state, index):
        """Image token `index` (the start code at 0) → logits of the next one; one position of work."""
        x = self.image_embedding(token_ids[:, None], start_index=index)
        state = dict(state)
        for i, block in enumerate(self.blocks):
            x, state[f"cache{i}"] = block(x, self_attention_cache=state[f"cache{i}"],
                                          self_attention_cache_update_index=self.text_length + index)
        return self.head(self.final_norm(x))[:, 0], state

    def step_without_cache(self, token_ids, state, index):
        """The same logits by running the whole sequence so far again (the cost the cache avoids)."""
        image_ids = ops.where(ops.arange(self.image_tokens)[None] == index - 1, token_ids[:, None], state["image_ids"])
        logits = self({"text_ids": state["text_ids"], "image_ids": image_ids}, training=False)["logits"]
        return ops.take(logits, index, axis=1), {**state, "image_ids": image_ids}

    def get_config(self):
        config = super().get_config()
        config.update(text_vocabulary_size=self.text_vocabulary_size, text_length=self.text_length,
                      num_codes=self.num_codes, image_tokens=self.image_tokens, hidden_dim=self.hidden_dim,
                      num_layers=self.num_layers, num_heads=self.num_heads, intermediate_dim=self.intermediate_dim,
                      dropout=self.dropout)
        return config
