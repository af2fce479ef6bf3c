"""The retrieval app's config: data with image and text augmentation, the dual encoder (tfmm's own encoders,
or a keras-hub CLIP/SigLIP preset), and zero-shot class names and prompt templates."""

import dataclasses

from tfmm.config import DataConfig, ImageAugmentConfig, TextAugmentConfig, TrainConfig, app_config, at_least, positive, variant
from tfmm.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
from tfmm.errors import TfmmError
from tfmm.losses import CONTRASTIVE_LOSSES
from tfmm.models.contrastive_retriever import DEFAULT_TEMPLATES, check_templates


@dataclasses.dataclass
class RetrievalDataConfig(DataConfig):
    augment: ImageAugmentConfig = dataclasses.field(default_factory=ImageAugmentConfig)
    text_augment: TextAugmentConfig = dataclasses.field(default_factory=TextAugmentConfig)


@dataclasses.dataclass
class RetrievalModelConfig:
    # A local keras-hub CLIPBackbone / SigLIPBackbone preset directory (its own tokenizer, image converter,
    # text length and logit scale); empty: the encoders below, trained from scratch or from their weights.
    preset: str = ""
    image_encoder: object = variant(IMAGE_ENCODERS, "cnn", size="small")  # group norm: no batch statistics to lean on
    text_encoder: object = variant(TEXT_ENCODERS, "transformer", size="small")
    embedding_dim: int = positive(128)
    projection_hidden_dim: int = at_least(0, 0)  # 0: a linear projection; else an MLP with this hidden width
    sequence_length: int = positive(32)
    vocabulary_size: int = positive(1000)
    loss: object = variant(CONTRASTIVE_LOSSES, "infonce")  # infonce, sigmoid (SigLIP), or triplet (with its margin)
    logit_scale_init: float = positive(1 / 0.07)
    logit_scale_max: float = positive(100.0)

    def validate(self, root):
        augment = root.data.augment
        if (augment.mixup or augment.cutmix) and self.loss.name == "triplet":
            raise TfmmError("data.augment.mixup/cutmix: the triplet loss has no soft targets for mixed images; "
                            "use model.loss = infonce or sigmoid")
        if not self.preset:
            return
        # With a preset these come from it; a value set here would be ignored, so it is refused.
        default = RetrievalModelConfig()
        decided = ["embedding_dim", "projection_hidden_dim", "sequence_length", "vocabulary_size", "logit_scale_init"]
        for name in decided:
            if getattr(self, name) != getattr(default, name):
                raise TfmmError(f"model.{name}: set by model.preset {self.preset}; leave it out")
        for tower in ("image_encoder", "text_encoder"):
            options, fresh = getattr(self, tower), getattr(default, tower)
            for name in ("name", "size", "weights"):
                if getattr(options, name) != getattr(fresh, name):
                    raise TfmmError(f"model.{tower}.{name}: set by model.preset {self.preset}; only "
                                    f"model.{tower}.trainable applies to a preset's tower")


@dataclasses.dataclass
class ZeroShotConfig:
    class_names: list = dataclasses.field(default_factory=list)  # empty: the shapes colour–shape combinations
    templates: list = dataclasses.field(default_factory=lambda: list(DEFAULT_TEMPLATES))  # stored in the model

    def validate(self, root):
        check_templates(self.templates, "zero_shot.templates")


RetrievalConfig = app_config("RetrievalConfig", RetrievalDataConfig, RetrievalModelConfig,
                             TrainConfig(xla_fusion="auto"), zero_shot=ZeroShotConfig)
