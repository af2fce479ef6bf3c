import keras
import keras_hub
from keras import ops

from tfmm import decoding
from tfmm.models.task import Task


@keras.saving.register_keras_serializable(package="tfmm")
class TextToImageTransformer(Task):
    """DALL-E-style stage 2: one causal Transformer over a prompt's text tokens followed by an image's
    VQ-VAE tokens in raster order.

    Text and image tokens have their own embeddings and positions (keras-hub `TokenAndPositionEmbedding`);
    the image part starts with a start code (`num_codes`), and the shared stack of keras-hub
    `TransformerDecoder` blocks (causal self-attention only) predicts each image token from the text and
    the image tokens before it. Inputs `text_ids` (batch, text_length) and `image_ids` (batch, image_tokens);
    output `logits` (batch, image_tokens, num_codes), float32. `model.fit` on `(inputs, image_ids)`.

    Generation (`generate`) prefills the text once into per-block key/value caches and then costs one
    position per image token; `use_cache=False` re-runs the whole sequence for every token instead
    (kept to measure what the cache saves). With `guidance_scale` ≠ 1, classifier-free guidance mixes
    the logits of the prompt and of the empty prompt: uncond + scale · (cond − uncond).
    """

    def __init__(self, text_vocabulary_size, text_length, num_codes, image_tokens, hidden_dim=256, num_layers=4,
                 num_heads=4, intermediate_dim=512, dropout=0.1, **kwargs):
        text_ids = keras.Input((text_length,), dtype="int32", name="text_ids")
        image_ids = keras.Input((image_tokens,), dtype="int32", name="image_ids")
        self.text_embedding = keras_hub.layers.TokenAndPositionEmbedding(text_vocabulary_size, text_length, hidden_dim,
                                                                         name="text_embedding")
        self.image_embedding = keras_hub.layers.TokenAndPositionEmbedding(num_codes + 1, image_tokens, hidden_dim,
                                                                          name="image_embedding")
        self.blocks = [keras_hub.layers.TransformerDecoder(intermediate_dim, num_heads, dropout=dropout,
                                                           normalize_first=True, name=f"block{i}")
                       for i in range(num_layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        self.head = keras.layers.Dense(num_codes, dtype="float32", name="logits")
        shifted = keras.layers.Concatenate(name="start_then_image")(
            [ops.full_like(image_ids[:, :1], num_codes), image_ids[:, :-1]])
        x = keras.layers.Concatenate(axis=1, name="text_then_image")(
            [self.text_embedding(text_ids), self.image_embedding(shifted)])
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.final_norm(x)[:, text_length:])
        super().__init__(inputs={"text_ids": text_ids, "image_ids": image_ids}, outputs={"logits": logits}, **kwargs)
        self.text_vocabulary_size, self.text_length, self.num_codes = text_vocabulary_size, text_length, num_codes
        self.image_tokens, self.hidden_dim, self.num_layers = image_tokens, hidden_dim, num_layers
        self.num_heads, self.intermediate_dim, self.dropout = num_heads, intermediate_dim, dropout
        self.token_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.token_accuracy = keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self.token_loss(y, y_pred["logits"])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.token_accuracy.update_state(y, y_pred["logits"])
        return self.get_metrics_result()

    # ----------------------------------------------------------------------------------------- decoding

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

    def generate(self, text_ids, null_text_ids=None, guidance_scale=1.0, temperature=1.0, top_k=0, top_p=1.0,
                 seed=(0, 0), forced_ids=None, use_cache=True):
        """Samples image token sequences (batch, image_tokens) for `text_ids`.

        `null_text_ids` (the empty prompt, one row) and `guidance_scale` ≠ 1: classifier-free guidance.
        `forced_ids` (batch, image_tokens), -1 where free: tokens kept as given (editing).
        """
        batch = ops.shape(text_ids)[0]
        guided = null_text_ids is not None and guidance_scale != 1.0
        rows = ops.concatenate([text_ids, ops.tile(null_text_ids, (batch, 1))], 0) if guided else text_ids
        if use_cache:
            state, step = self.prefill(rows), self.step
        else:
            state = {"text_ids": rows, "image_ids": ops.zeros((ops.shape(rows)[0], self.image_tokens), "int32")}
            step = self.step_without_cache

        def guided_step(token_ids, state, index):
            both = ops.concatenate([token_ids, token_ids], 0) if guided else token_ids
            logits, state = step(both, state, index)
            if guided:
                conditional, unconditional = logits[:batch], logits[batch:]
                logits = unconditional + guidance_scale * (conditional - unconditional)
            return logits, state

        out = decoding.sample(guided_step, state, batch, self.start_code, -1, self.image_tokens, temperature, top_k,
                              top_p, seed, pad_id=0, forced_ids=forced_ids)
        return out["token_ids"]

    def log_likelihood(self, text_ids, image_ids):
        """Sum over the image tokens of their log-probability under the model (batch,)."""
        logits = self({"text_ids": text_ids, "image_ids": image_ids}, training=False)["logits"]
        log_probabilities = ops.log_softmax(logits, axis=-1)
        picked = ops.take_along_axis(log_probabilities, ops.cast(image_ids, "int32")[..., None], axis=-1)[..., 0]
        return ops.sum(picked, axis=-1)

    def get_config(self):
        return {"name": self.name, "text_vocabulary_size": self.text_vocabulary_size, "text_length": self.text_length,
                "num_codes": self.num_codes, "image_tokens": self.image_tokens, "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers, "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
