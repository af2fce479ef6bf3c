import keras
import keras_hub
import tensorflow as tf

from tfmm.errors import TfmmError
from tfmm.layers import TokenPooling, TransformerBlock

SIZES = {
    "tiny": dict(patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128),
    "small": dict(patch_size=8, num_layers=4, num_heads=4, hidden_dim=256, mlp_dim=1024),
    "base": dict(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072),
}


@keras.saving.register_keras_serializable(package="tfmm")
class PatchEmbedding(keras.layers.Layer):
    """Non-overlapping patches projected to `hidden_dim`, a class token first, learned positions added."""

    def __init__(self, patch_size, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.patch_size, self.hidden_dim = patch_size, hidden_dim
        self.projection = keras.layers.Conv2D(hidden_dim, patch_size, strides=patch_size, dtype=self.dtype_policy,
                                              name="projection")

    def build(self, input_shape):
        self.projection.build(input_shape)
        positions = (input_shape[1] // self.patch_size) * (input_shape[2] // self.patch_size) + 1
        self.class_token = self.add_weight(shape=(1, 1, self.hidden_dim), initializer="random_normal", name="class_token")
        self.position_embedding = self.add_weight(shape=(positions, self.hidden_dim),
                                                  initializer=keras.initializers.RandomNormal(stddev=0.02),
                                                  name="position_embedding")

    def call(self, images):
        patches = self.projection(images)
        patches = tf.reshape(patches, [tf.shape(patches)[0], -1, self.hidden_dim])
        class_token = tf.tile(tf.cast(self.class_token, patches.dtype), [tf.shape(patches)[0], 1, 1])
        return tf.concat([class_token, patches], 1) + tf.cast(self.position_embedding, patches.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], (input_shape[1] // self.patch_size) * (input_shape[2] // self.patch_size) + 1,
                self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(patch_size=self.patch_size, hidden_dim=self.hidden_dim)
        return config


@keras.saving.register_keras_serializable(package="tfmm")
class ViTImageEncoder(keras_hub.models.Backbone):
    """Vision Transformer built from tfmm's `TransformerBlock`s (the maths of keras-hub's `ViTBackbone`, a
    faster graph). `from_keras_hub(backbone)` takes a keras-hub ViT's weights (a local pretrained preset).

    `sequence_output` holds the patch tokens (class token dropped), `pooled_output` the class token.
    """

    def __init__(self, image_size, patch_size=8, hidden_dim=256, num_layers=4, num_heads=4, mlp_dim=1024,
                 layer_norm_epsilon=1e-6, dropout=0.0, dtype=None, **kwargs):
        if image_size % patch_size:
            raise TfmmError(f"image size {image_size} is not a multiple of the ViT patch size {patch_size}")
        images = keras.Input((image_size, image_size, 3), name="images")
        x = keras.layers.Rescaling(2.0, offset=-1.0, dtype=dtype, name="rescale")(images)
        x = PatchEmbedding(patch_size, hidden_dim, dtype=dtype, name="patch_embedding")(x)
        for layer in range(num_layers):
            x = TransformerBlock(hidden_dim, num_heads, mlp_dim, dropout=dropout, layer_norm_epsilon=layer_norm_epsilon,
                                 dtype=dtype, name=f"block{layer}")(x)
        tokens = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm")(x)
        pooled = TokenPooling("first", dtype=dtype, name="class_token")(tokens)
        sequence = keras.layers.Cropping1D((1, 0), dtype=dtype, name="patch_tokens")(tokens)
        super().__init__(inputs=images, outputs={"sequence_output": sequence, "pooled_output": pooled}, dtype=dtype,
                         **kwargs)
        self.image_size, self.patch_size, self.hidden_dim = image_size, patch_size, hidden_dim
        self.num_layers, self.num_heads, self.mlp_dim = num_layers, num_heads, mlp_dim
        self.layer_norm_epsilon, self.dropout = layer_norm_epsilon, dropout
        self.output_dim = hidden_dim

    @classmethod
    def from_size(cls, size, image_size, dtype=None):
        return cls(image_size, dtype=dtype, **SIZES[size])

    @classmethod
    def from_keras_hub(cls, backbone, dtype=None):
        """A tfmm ViT holding the weights of a keras-hub `ViTBackbone` (same outputs, to float rounding)."""
        unsupported = {name: getattr(backbone, name) for name in ("use_class_token", "use_mha_bias", "use_mlp_bias",
                                                                  "use_patch_bias") if not getattr(backbone, name)}
        patch = backbone.patch_size
        patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
        if patch[0] != patch[1]:
            unsupported["patch_size"] = patch
        if backbone.attention_dropout != backbone.dropout_rate:
            unsupported["attention_dropout"] = backbone.attention_dropout
        if unsupported or backbone.image_shape[0] != backbone.image_shape[1] or backbone.image_shape[-1] != 3:
            raise TfmmError(f"a keras-hub ViT with {unsupported or {'image_shape': backbone.image_shape}} cannot be "
                            "converted: tfmm's ViT takes square RGB images and patches, a class token, biases "
                            "everywhere and one dropout rate")
        encoder = cls(backbone.image_shape[0], patch[0], backbone.hidden_dim, backbone.num_layers,
                      backbone.num_heads, backbone.mlp_dim, backbone.layer_norm_epsilon, backbone.dropout_rate,
                      dtype=dtype)
        embedding = backbone.get_layer("vit_patching_and_embedding")
        patches = encoder.get_layer("patch_embedding")
        patches.projection.set_weights(embedding.patch_embedding.get_weights())
        patches.class_token.assign(embedding.class_token)
        patches.position_embedding.assign(embedding.position_embedding.embeddings)
        vit_encoder = backbone.get_layer("vit_encoder")
        for index, source in enumerate(vit_encoder.encoder_layers):
            block = encoder.get_layer(f"block{index}")
            block.attention_norm.set_weights(source.layer_norm_1.get_weights())
            block.feedforward_norm.set_weights(source.layer_norm_2.get_weights())
            attention = source.mha
            parts = (attention._query_dense, attention._key_dense, attention._value_dense)
            block.qkv.set_weights([keras.ops.concatenate([keras.ops.reshape(p.kernel, (backbone.hidden_dim, -1)) for p in parts], 1),
                                   keras.ops.concatenate([keras.ops.reshape(p.bias, (-1,)) for p in parts], 0)])
            block.attention_output.set_weights([keras.ops.reshape(attention._output_dense.kernel, (backbone.hidden_dim, -1)),
                                                attention._output_dense.bias])
            block.intermediate.set_weights(source.mlp.dense_1.get_weights())
            block.feedforward_output.set_weights(source.mlp.dense_2.get_weights())
        encoder.get_layer("final_norm").set_weights(vit_encoder.layer_norm.get_weights())
        return encoder

    def default_lora_layer_names(self):
        return ["qkv"]  # each block's query-key-value projection

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, patch_size=self.patch_size, hidden_dim=self.hidden_dim,
                      num_layers=self.num_layers, num_heads=self.num_heads, mlp_dim=self.mlp_dim,
                      layer_norm_epsilon=self.layer_norm_epsilon, dropout=self.dropout)
        return config
