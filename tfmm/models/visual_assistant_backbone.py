import math

import keras
import keras_hub

from tfmm.layers.grid_positions import GridPositions
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
    target (`tfmm.models.visual_assistant.region_loss`); replies never use it.

    `merge_regions` m > 1 makes one image token of each m×m block of neighbouring regions, their features side by
    side (InternVL's pixel shuffle): a fine grid's detail — where in a block an object sits — at the language
    model's cost of a coarse one. The region target still reads the fine grid.

    `image_positions` "grid" adds a learnt row and column embedding to each image token (`GridPositions`), on top
    of the language model's own positions; "none" leaves only those."""

    def __init__(self, image_encoder, language_model, region_classes=(), merge_regions=1, image_positions="none",
                 dtype=None, **kwargs):
        if isinstance(image_encoder, dict):
            image_encoder = keras.layers.deserialize(image_encoder)
        if isinstance(language_model, dict):
            language_model = keras.layers.deserialize(language_model)
        hidden = language_model.hidden_dim
        self.image_encoder, self.merge_regions = image_encoder, int(merge_regions)
        projector = [keras.layers.Dense(hidden, activation="gelu", dtype=dtype, name="in"),
                     keras.layers.Dense(hidden, dtype=dtype, name="out")]
        count, width = image_encoder.output["sequence_output"].shape[1:]
        grid = math.isqrt(count)

        def need_square_grid(what):
            if grid * grid != count:
                raise ValueError(f"{what} needs a square grid of regions; the image encoder gives {count}")

        if self.merge_regions > 1:
            m = self.merge_regions
            if grid * grid != count or grid % m:
                raise ValueError(f"merge_regions {m} needs a square grid of regions whose side it divides; the image "
                                 f"encoder gives {count}")
            # (row block, row in block, column block, column in block × features) → blocks first (5-D: TFLite)
            projector = [keras.layers.Reshape((grid // m, m, grid // m, m * width), dtype=dtype, name="blocks"),
                         keras.layers.Permute((1, 3, 2, 4), dtype=dtype, name="block_major"),
                         keras.layers.Reshape(((grid // m) ** 2, m * m * width), dtype=dtype, name="merged"),
                         *projector]
        if image_positions not in ("none", "grid"):
            raise ValueError(f"image_positions must be 'none' or 'grid', got {image_positions!r}")
        self.image_positions = image_positions
        if image_positions == "grid":
            need_square_grid("image_positions 'grid'")
            projector.append(GridPositions(grid // self.merge_regions, dtype=dtype, name="grid_positions"))
        self.projector = keras.Sequential(projector, name="projector")
        self.language_model = PrefixLanguageModel(language_model, dtype=dtype, name="language_model")
        images = keras.Input(image_encoder.input.shape[1:], name="images")
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        regions = image_encoder(images)["sequence_output"]
        outputs = {"logits": self.language_model(self.projector(regions), token_ids, padding_mask)}
        self.region_classes = tuple(int(n) for n in region_classes)
        if self.region_classes:
            need_square_grid("region_classes")
            self.region_head = keras.layers.Dense(sum(self.region_classes), dtype="float32", name="region_head")
            outputs["region_logits"] = self.region_head(regions)
        super().__init__(inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=outputs, dtype=dtype, **kwargs)

    @property
    def num_image_tokens(self):
        return self.image_encoder.output["sequence_output"].shape[1] // self.merge_regions ** 2

    def image_tokens(self, images):
        return self.projector(self.image_encoder(images)["sequence_output"])

    def get_config(self):
        config = super().get_config()
        config.update(image_encoder=keras.layers.serialize(self.image_encoder),
                      language_model=keras.layers.serialize(self.language_model.backbone),
                      region_classes=list(self.region_classes), merge_regions=self.merge_regions,
                      image_positions=self.image_positions)
        return config

