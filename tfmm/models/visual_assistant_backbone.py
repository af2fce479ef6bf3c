import math

import keras
import keras_hub

from tfmm.layers.prefix_language_model import PrefixLanguageModel


@keras.saving.register_keras_serializable(package="tfmm")
class VisualAssistantBackbone(keras_hub.models.Backbone):
    """LLaVA's recipe: an image encoder's regions → an MLP projector (two layers, GELU, as LLaVA-1.5) → image
    tokens in front of the words of a decoder-only language model (a keras-hub GPT-2 or Gemma backbone, built
    from a config or loaded from a local preset).

    `images` (float, S×S), `token_ids`, `padding_mask` (B, L) → `logits` (B, L, vocabulary) float32: the next
    word after each word position, having seen every image token and the words before it. With `region_classes`
    (classes per label channel, `tfmm.data.region_labels.REGION_CLASSES`), also `region_logits` (B, regions,
    sum of them): each region's classes read off the encoder's features by one dense layer, for the auxiliary
    target (`tfmm.models.visual_assistant.region_loss`); replies never use it."""

    def __init__(self, image_encoder, language_model, region_classes=(), dtype=None, **kwargs):
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
        regions = image_encoder(images)["sequence_output"]
        outputs = {"logits": self.language_model(self.projector(regions), token_ids, padding_mask)}
        self.region_classes = tuple(int(n) for n in region_classes)
        if self.region_classes:
            grid = math.isqrt(regions.shape[1])
            if grid * grid != regions.shape[1]:
                raise ValueError(f"region_classes needs a square grid of regions; the image encoder gives "
                                 f"{regions.shape[1]}")
            self.region_head = keras.layers.Dense(sum(self.region_classes), dtype="float32", name="region_head")
            outputs["region_logits"] = self.region_head(regions)
        super().__init__(inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=outputs, dtype=dtype, **kwargs)

    @property
    def num_image_tokens(self):
        return self.image_encoder.output["sequence_output"].shape[1]

    def image_tokens(self, images):
        return self.projector(self.image_encoder(images)["sequence_output"])

    def get_config(self):
        config = super().get_config()
        config.update(image_encoder=keras.layers.serialize(self.image_encoder),
                      language_model=keras.layers.serialize(self.language_model.backbone),
                      region_classes=list(self.region_classes))
        return config

