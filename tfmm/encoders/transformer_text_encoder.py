import keras
import keras_hub

from tfmm.layers import TokenPooling, TransformerBlock

SIZES = {
    "tiny": dict(hidden_dim=32, num_layers=1, num_heads=2, intermediate_dim=64),
    "small": dict(hidden_dim=128, num_layers=2, num_heads=4, intermediate_dim=256),
    "base": dict(hidden_dim=256, num_layers=4, num_heads=4, intermediate_dim=1024),
}


@keras.saving.register_keras_serializable(package="tfmm")
class TransformerTextEncoder(keras_hub.models.Backbone):
    """Token + position embeddings and pre-norm `TransformerBlock`s (keras-hub's `TransformerEncoder` maths)."""

    def __init__(self, vocabulary_size, sequence_length, hidden_dim=128, num_layers=2, num_heads=4,
                 intermediate_dim=256, dropout=0.0, dtype=None, **kwargs):
        token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((sequence_length,), dtype="int32", name="padding_mask")
        x = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size, sequence_length, hidden_dim, dtype=dtype, name="embedding"
        )(token_ids)
        for layer in range(num_layers):
            x = TransformerBlock(hidden_dim, num_heads, intermediate_dim, dropout=dropout, dtype=dtype,
                                 name=f"block{layer}")(x, padding_mask=padding_mask)
        x = keras.layers.LayerNormalization(epsilon=1e-5, dtype=dtype, name="final_norm")(x)
        pooled = TokenPooling("mean", dtype=dtype, name="pool")(x, padding_mask)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": x, "pooled_output": pooled}, dtype=dtype, **kwargs,
        )
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.output_dim = hidden_dim

    def default_lora_layer_names(self):
        return ["qkv"]  # each block's query-key-value projection

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, sequence_length=self.sequence_length, hidden_dim=self.hidden_dim,
            num_layers=self.num_layers, num_heads=self.num_heads, intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
        )
        return config
