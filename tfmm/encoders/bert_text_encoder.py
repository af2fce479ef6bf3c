import keras
import keras_hub

from tfmm.layers import SegmentIds

SIZES = {
    "tiny": dict(num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64),
    "small": dict(num_layers=2, num_heads=4, hidden_dim=128, intermediate_dim=512),
    "base": dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
}


@keras.saving.register_keras_serializable(package="tfmm")
class BertTextEncoder(keras_hub.models.Backbone):
    """keras-hub's `BertBackbone` behind tfmm's text-encoder interface (one segment)."""

    def __init__(self, backbone, sequence_length, dtype=None, **kwargs):
        if isinstance(backbone, dict):
            backbone = keras.layers.deserialize(backbone)
        token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((sequence_length,), dtype="int32", name="padding_mask")
        segment_ids = SegmentIds(name="segment_ids")(token_ids)
        outputs = backbone({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": outputs["sequence_output"], "pooled_output": outputs["pooled_output"]},
            dtype=dtype, **kwargs,
        )
        self.backbone = backbone
        self.sequence_length = sequence_length
        self.output_dim = backbone.hidden_dim

    @classmethod
    def from_size(cls, size, vocabulary_size, sequence_length, dtype=None):
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=vocabulary_size, max_sequence_length=max(sequence_length, 32), dropout=0.0,
            dtype=dtype, **SIZES[size],
        )
        return cls(backbone=backbone, sequence_length=sequence_length, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config.update(backbone=keras.layers.serialize(self.backbone), sequence_length=self.sequence_length)
        return config
