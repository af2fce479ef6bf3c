import keras
import keras_hub

from tfmm.layers.prefix_language_model import PrefixLanguageModel


@keras.saving.register_keras_serializable(package="tfmm")
class VisualAssistantBackbone(keras_hub.models.Backbone):
    """LLaVA's recipe: an image encoder's regions → an MLP projector (two layers, GELU, as LLaVA-1.5) → image
    tokens in front of the words of a decoder-only language model (a keras-hub GPT-2 or Gemma backbone, built
    from a config or loaded from a local preset).

    `images` (float, S×S), `token_ids`, `padding_mask` (B, L) → `logits` (B, L, vocabulary) float32: the next
    word after each word position, having seen every image token and the words before it."""

    def __init__(self, image_encoder, language_model, dtype=None, **kwargs):
        if isinstance(image_encoder, dict):
            image_encoder = keras.layers.deserialize(image_encoder)
        if isinstance(language_model, dict):
            language_model = keras.layers.deserialize(language_model)
        hidden = language_model.hidden_dim
        self.image_encoder = image_encoder
        self.projector = keras.Sequential([keras.layers.Dense(hidden, activation="gelu", dtype=dtype, name="in"),
                                           keras.layers.Dense(hidden, dtype=dtype, name="out")], name="projector")
        self.language_model = PrefixLanguageModel(language_model, dtype=dtype, name="language_model")
        images = keras.Input(image_encoder.input.shape[1:], name="images")
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        logits = self.language_model(self.projector(image_encoder(images)["sequence_output"]), token_ids, padding_mask)
        super().__init__(inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
                         outputs={"logits": logits}, dtype=dtype, **kwargs)

    @property
    def num_image_tokens(self):
        return self.image_encoder.output["sequence_output"].shape[1]

    def image_tokens(self, images):
        return self.projector(self.image_encoder(images)["sequence_output"])

    def get_config(self):
        config = super().get_config()
        config.update(image_encoder=keras.layers.serialize(self.image_encoder),
                      language_model=keras.layers.serialize(self.language_model.backbone))
        return config

