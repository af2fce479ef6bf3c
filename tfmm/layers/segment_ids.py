import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class SegmentIds(keras.layers.Layer):
    """All-zero segment ids shaped like `token_ids`, for BERT-style encoders fed one segment."""

    def call(self, token_ids):
        return ops.zeros_like(token_ids, dtype="int32")

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="int32")
