import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class ProjectionHead(keras.layers.Layer):
    """Projects encoder features into the shared embedding space.

    Linear (or a one-hidden-layer MLP when `hidden_dim > 0`), then L2 normalisation
    when `normalize` is set. The output is float32 even under mixed precision, since
    similarities and the contrastive loss need the precision.
    """

    def __init__(self, embedding_dim, hidden_dim=0, dropout=0.0, normalize=True, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.normalize = normalize
        self.hidden = keras.layers.Dense(hidden_dim, activation="gelu", name="hidden") if hidden_dim else None
        self.drop = keras.layers.Dropout(dropout) if dropout else None
        self.output_projection = keras.layers.Dense(embedding_dim, name="output", dtype="float32" if normalize else None)

    def build(self, input_shape):
        shape = input_shape
        if self.hidden is not None:
            self.hidden.build(shape)
            shape = (*shape[:-1], self.hidden_dim)
        self.output_projection.build(shape)

    def call(self, features, training=None):
        x = features
        if self.hidden is not None:
            x = self.hidden(x)
        if self.drop is not None:
            x = self.drop(x, training=training)
        x = self.output_projection(ops.cast(x, "float32") if self.normalize else x)
        if self.normalize:
            x = x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)), 1e-12)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.embedding_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "dropout": self.dropout,
            "normalize": self.normalize,
        }
