import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class GRUAttentionDecoder(keras.layers.Layer):
    """Show, Attend and Tell: a GRU that attends over the image regions before every word.

    Each step: additive (Bahdanau) attention of the previous hidden state over the regions gives a
    context vector; the GRU cell reads [word embedding, context]; a deep output layer on
    [hidden, context, embedding] gives the logits. The first hidden state comes from the mean region.

    `call({"token_ids" (B, L), "regions" (B, R, D)})` runs teacher forcing over L positions →
    `logits` (B, L, vocabulary) float32 and `attention` (B, L, R). For decoding, `initial_state` and
    `step` run one position at a time with the same weights (tfmm.decoding's step contract).
    """

    def __init__(self, vocabulary_size, embedding_dim=128, hidden_dim=256, attention_dim=128, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.embedding_dim, self.hidden_dim = vocabulary_size, embedding_dim, hidden_dim
        self.attention_dim, self.dropout_rate = attention_dim, dropout
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, dtype=self.dtype_policy, name="embedding")
        self.initial_hidden = keras.layers.Dense(hidden_dim, activation="tanh", dtype=self.dtype_policy, name="initial_hidden")
        self.region_keys = keras.layers.Dense(attention_dim, dtype=self.dtype_policy, name="region_keys")
        self.hidden_query = keras.layers.Dense(attention_dim, dtype=self.dtype_policy, name="hidden_query")
        self.attention = keras.layers.AdditiveAttention(use_scale=True, dtype=self.dtype_policy, name="attention")
        self.cell = keras.layers.GRUCell(hidden_dim, dtype=self.dtype_policy, name="gru")
        self.deep_output = keras.layers.Dense(embedding_dim, activation="tanh", dtype=self.dtype_policy, name="deep_output")
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")
        self.logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")

    def build(self, input_shape):
        regions = input_shape["regions"]
        batch, region_dim = regions[0], regions[-1]
        self.initial_hidden.build((batch, region_dim))
        self.region_keys.build(regions)
        self.hidden_query.build((batch, self.hidden_dim))
        self.embedding.build((batch, None))
        self.attention.build([(batch, 1, self.attention_dim), regions, (batch, regions[1], self.attention_dim)])
        self.cell.build((batch, self.embedding_dim + region_dim))
        self.deep_output.build((batch, self.hidden_dim + region_dim + self.embedding_dim))
        self.logits.build((batch, self.embedding_dim))

    def initial_state(self, regions, max_length=None):
        """The decoding state for `regions` (B, R, D): hidden state, attention keys, the regions."""
        del max_length  # a GRU needs no cache sized by the caption length
        return {"hidden": self.initial_hidden(ops.mean(regions, axis=1)), "keys": self.region_keys(regions),
                "regions": regions}

    def _step(self, embedded, state, training=None):
        query = self.hidden_query(state["hidden"])[:, None]
        context, weights = self.attention([query, state["regions"], state["keys"]], return_attention_scores=True)
        context, weights = context[:, 0], weights[:, 0]
        hidden, _ = self.cell(ops.concatenate([embedded, context], -1), [state["hidden"]], training=training)
        features = self.deep_output(ops.concatenate([hidden, context, embedded], -1))
        logits = self.logits(self.dropout(features, training=training))
        return logits, {**state, "hidden": hidden}, weights

    def step(self, token_ids, state, index):
        logits, state, _ = self._step(self.embedding(token_ids), state)
        return logits, state

    def call(self, inputs, training=None):
        embedded = self.embedding(inputs["token_ids"])
        state = self.initial_state(inputs["regions"])
        logits, attention = [], []
        for position in range(inputs["token_ids"].shape[1]):  # captions are short: an unrolled loop is fastest here
            step_logits, state, weights = self._step(embedded[:, position], state, training)
            logits.append(step_logits)
            attention.append(weights)
        return {"logits": ops.stack(logits, axis=1), "attention": ops.cast(ops.stack(attention, axis=1), "float32")}

    def compute_output_spec(self, inputs, training=None):
        batch, length = inputs["token_ids"].shape
        regions = inputs["regions"].shape[1]
        return {"logits": keras.KerasTensor((batch, length, self.vocabulary_size), "float32"),
                "attention": keras.KerasTensor((batch, length, regions), "float32")}

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim, "attention_dim": self.attention_dim, "dropout": self.dropout_rate}
