import keras
import keras_hub

from tfmm.layers import TokenPooling

SIZES = {
    "tiny": dict(input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 128],
                 stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block"),
    "small": dict(input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
                  stackwise_num_blocks=[2, 2, 2, 2], stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block"),
    "base": dict(input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
                 stackwise_num_blocks=[3, 4, 6, 3], stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block"),
}


@keras.saving.register_keras_serializable(package="tfmm")
class ResNetImageEncoder(keras_hub.models.Backbone):
    """keras-hub's `ResNetBackbone` behind tfmm's image-encoder interface.

    `backbone` is a `keras_hub.models.ResNetBackbone` (built from a size, or loaded with
    `ResNetBackbone.from_preset(local_dir)`). Outputs as `CNNImageEncoder`.
    """

    def __init__(self, backbone, image_size, dtype=None, **kwargs):
        if isinstance(backbone, dict):
            backbone = keras.layers.deserialize(backbone)
        images = keras.Input((image_size, image_size, 3), name="images")
        x = keras.layers.Rescaling(2.0, offset=-1.0, dtype=dtype, name="rescale")(images)
        feature_map = backbone(x)
        grid = feature_map.shape[1] * feature_map.shape[2]
        sequence = keras.layers.Reshape((grid, feature_map.shape[-1]), dtype=dtype, name="regions")(feature_map)
        pooled = TokenPooling("mean", dtype=dtype, name="pool")(sequence)
        super().__init__(inputs=images, outputs={"sequence_output": sequence, "pooled_output": pooled}, dtype=dtype, **kwargs)
        self.backbone = backbone
        self.image_size = image_size
        self.output_dim = feature_map.shape[-1]

    @classmethod
    def from_size(cls, size, image_size, dtype=None):
        backbone = keras_hub.models.ResNetBackbone(image_shape=(image_size, image_size, 3), dtype=dtype, **SIZES[size])
        return cls(backbone=backbone, image_size=image_size, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config.update(backbone=keras.layers.serialize(self.backbone), image_size=self.image_size)
        return config
