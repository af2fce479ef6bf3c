import keras
import keras_hub

from tfmm.layers import TokenPooling

SIZES = {
    "tiny": dict(patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128),
    "small": dict(patch_size=8, num_layers=4, num_heads=4, hidden_dim=256, mlp_dim=1024),
    "base": dict(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072),
}


@keras.saving.register_keras_serializable(package="tfmm")
class ViTImageEncoder(keras_hub.models.Backbone):
    """keras-hub's `ViTBackbone` behind tfmm's image-encoder interface.

    `sequence_output` holds the patch tokens (class token dropped), `pooled_output`
    the class token.
    """

    def __init__(self, backbone, dtype=None, **kwargs):
        if isinstance(backbone, dict):
            backbone = keras.layers.deserialize(backbone)
        image_shape = backbone.image_shape
        images = keras.Input(image_shape, name="images")
        x = keras.layers.Rescaling(2.0, offset=-1.0, dtype=dtype, name="rescale")(images)
        tokens = backbone(x)
        pooled = TokenPooling("first", dtype=dtype, name="class_token")(tokens)
        sequence = keras.layers.Cropping1D((1, 0), dtype=dtype, name="patch_tokens")(tokens)
        super().__init__(inputs=images, outputs={"sequence_output": sequence, "pooled_output": pooled}, dtype=dtype, **kwargs)
        self.backbone = backbone
        self.image_size = image_shape[0]
        self.output_dim = backbone.hidden_dim

    @classmethod
    def from_size(cls, size, image_size, dtype=None):
        backbone = keras_hub.models.ViTBackbone(image_shape=(image_size, image_size, 3), dtype=dtype, **SIZES[size])
        return cls(backbone=backbone, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config.update(backbone=keras.layers.serialize(self.backbone))
        return config
