import keras
import keras_hub

from tfmm.layers import TokenPooling

SIZES = {
    "tiny": dict(embedding_dim=32, hidden_dim=32, num_layers=1),
    "small": dict(embedding_dim=128, hidden_dim=128, num_layers=1),
    "base": dict(embedding_dim=256, hidden_dim=256, num_layers=2),
}


@keras.saving.register_keras_serializable(package="tfmm")
class GRUTextEncoder(keras_hub.models.Backbone):
    """Token embedding and bidirectional GRU layers; pooled output is the masked mean.

    The GRUs are unrolled (`unroll=True`, sequences are short): TFLite then needs no
    TensorList ops, and int8 calibration works (see the TFLite reference notes).
    """

    def __init__(self, vocabulary_size, sequence_length, embedding_dim=128, hidden_dim=128, num_layers=1, dtype=None, **kwargs):
        token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((sequence_length,), dtype="int32", name="padding_mask")
        x = keras.layers.Embedding(vocabulary_size, embedding_dim, dtype=dtype, name="token_embedding")(token_ids)
        for layer in range(num_layers):
            x = keras.layers.Bidirectional(
                keras.layers.GRU(hidden_dim, return_sequences=True, unroll=True, dtype=dtype),
                dtype=dtype, name=f"bigru{layer}",
            )(x)
        pooled = TokenPooling("mean", dtype=dtype, name="pool")(x, padding_mask)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": x, "pooled_output": pooled}, dtype=dtype, **kwargs,
        )
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.output_dim = 2 * hidden_dim

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, sequence_length=self.sequence_length,
            embedding_dim=self.embedding_dim, hidden_dim=self.hidden_dim, num_layers=self.num_layers,
        )
        return config
