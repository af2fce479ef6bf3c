import keras
import keras_hub

from tfmm.layers import ProjectionHead


@keras.saving.register_keras_serializable(package="tfmm")
class CLIPBackbone(keras_hub.models.Backbone):
    """Dual encoder: image and text encoders, projection heads, L2-normalised embeddings.

    Inputs `images`, `token_ids`, `padding_mask`; outputs `image_embedding` and
    `text_embedding` (float32, unit length). `image_embedder()` / `text_embedder()`
    give single-tower models that share these weights, for indexing and export.
    """

    def __init__(self, image_encoder, text_encoder, embedding_dim=128, projection_hidden_dim=0, dtype=None, **kwargs):
        if isinstance(image_encoder, dict):
            image_encoder = keras.layers.deserialize(image_encoder)
        if isinstance(text_encoder, dict):
            text_encoder = keras.layers.deserialize(text_encoder)
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_projection = ProjectionHead(embedding_dim, projection_hidden_dim, dtype=dtype, name="image_projection")
        self.text_projection = ProjectionHead(embedding_dim, projection_hidden_dim, dtype=dtype, name="text_projection")
        images = keras.Input(image_encoder.input.shape[1:], name="images")
        text = {name: keras.Input(t.shape[1:], dtype="int32", name=name) for name, t in text_encoder.input.items()}
        image_embedding = self.image_projection(image_encoder(images)["pooled_output"])
        text_embedding = self.text_projection(text_encoder(text)["pooled_output"])
        super().__init__(
            inputs={"images": images, **text},
            outputs={"image_embedding": image_embedding, "text_embedding": text_embedding},
            dtype=dtype, **kwargs,
        )
        self.embedding_dim = embedding_dim
        self.projection_hidden_dim = projection_hidden_dim

    @property
    def image_size(self):
        return self.image_encoder.input.shape[1]

    @property
    def sequence_length(self):
        return self.text_encoder.input["token_ids"].shape[1]

    def _tower(self, name, build):
        # Kept outside Keras' attribute tracking: the towers share this model's layers and weights.
        towers = self.__dict__.setdefault("_towers", {})
        if name not in towers:
            towers[name] = build()
        return towers[name]

    def image_embedder(self):
        """The image tower alone: `images` → `{"embedding"}` (shares this model's weights)."""
        def build():
            images = keras.Input(self.image_encoder.input.shape[1:], name="images")
            embedding = self.image_projection(self.image_encoder(images)["pooled_output"])
            return keras.Model(images, {"embedding": embedding}, name="image_embedder")

        return self._tower("image", build)

    def text_embedder(self):
        """The text tower alone: `token_ids`, `padding_mask` → `{"embedding"}`."""
        def build():
            text = {n: keras.Input(t.shape[1:], dtype="int32", name=n) for n, t in self.text_encoder.input.items()}
            embedding = self.text_projection(self.text_encoder(text)["pooled_output"])
            return keras.Model(text, {"embedding": embedding}, name="text_embedder")

        return self._tower("text", build)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_encoder=keras.layers.serialize(self.image_encoder),
            text_encoder=keras.layers.serialize(self.text_encoder),
            embedding_dim=self.embedding_dim,
            projection_hidden_dim=self.projection_hidden_dim,
        )
        return config
