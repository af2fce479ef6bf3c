"""The generate app's config: data, the VQ-VAE (stage 1), the token transformer (stage 2, `model`), the judge's
training, sampling and generation settings; shared by the app and its stages."""

import dataclasses

from tfmm.cli import SAMPLING_FLAGS
from tfmm.config import (
    DataConfig,
    ExportConfig,
    ImageAugmentConfig,
    SamplingConfig,
    TextAugmentConfig,
    TrainConfig,
    app_config,
    at_least,
    between,
    one_of,
    positive,
)
from tfmm.errors import TfmmError


@dataclasses.dataclass
class GenerateDataConfig(DataConfig):
    # "shapes" (built-in scenes; prompts are their captions), or any caption source of the caption app
    # (a caption folder, COCO .json, TFRecords, easy_vqa). The fidelity judge needs the shapes.
    source: str = "shapes"
    # 32 px with ×4 downsampling: 8×8 = 64 tokens per image. At 64 px the same 64 tokens need ×8, which
    # reached 24 dB in the CPU budget against 27.5 dB here after 4 epochs (BENCHMARKS.md notes).
    image_size: int = at_least(8, 32)
    batch_size: int = positive(64)
    text_dropout: float = between(0, 1, 0.1)  # training prompts replaced by the empty prompt (classifier-free guidance)
    # Image augmentation trains the VQ-VAE only (stage 2 learns the tokens of the images as they are);
    # prompts may take synonyms, which keep what a prompt asks for.
    augment: ImageAugmentConfig = dataclasses.field(default_factory=ImageAugmentConfig)
    text_augment: TextAugmentConfig = dataclasses.field(default_factory=TextAugmentConfig)


@dataclasses.dataclass
class VQVAEConfig:
    downsample: int = one_of((4, 8), 4)  # a 32×32 image becomes 8×8 or 4×4 tokens
    hidden_dim: int = positive(64)
    residual_blocks: int = at_least(0, 2)
    num_codes: int = positive(256)
    code_dim: int = positive(64)
    beta: float = at_least(0, 0.25)  # commitment weight
    ema_decay: float = between(0, 1, 0.99)  # EMA codebook with dead-code restarts; 0 = codebook learnt by gradient

    def validate(self, root):
        if root.data.image_size % self.downsample:
            raise TfmmError(f"data.image_size {root.data.image_size} is not divisible by vqvae.downsample {self.downsample}")


@dataclasses.dataclass
class TokenModelConfig:
    hidden_dim: int = positive(256)
    num_layers: int = positive(4)
    num_heads: int = positive(4)
    intermediate_dim: int = positive(512)
    dropout: float = between(0, 1, 0.1)
    sequence_length: int = positive(32)  # prompt word pieces incl. [CLS]/[SEP]
    vocabulary_size: int = positive(400)

    def validate(self, root):
        if self.hidden_dim % self.num_heads:
            raise TfmmError(f"model.hidden_dim {self.hidden_dim} is not divisible by model.num_heads {self.num_heads}")


@dataclasses.dataclass
class GenerationConfig:
    guidance_scale: float = at_least(0, 3.0)  # classifier-free guidance; 1 = off (stored in the model)
    samples_per_prompt: int = positive(4)  # predict
    edit_candidates: int = positive(8)  # edits drawn; the most likely whole image is kept
    eval_prompts: int = positive(200)  # prompts per split that eval judges


# `model` is stage 2 (the token transformer); the VQ-VAE and the judge train with their own sections. The exported
# TFLite file is the VQ-VAE decoder: float32 and dynamic_int8.
GenerateConfig = app_config(
    "GenerateConfig", GenerateDataConfig, TokenModelConfig, TrainConfig(epochs=12, learning_rate=1e-3),
    ExportConfig(tflite_quantization=["float32", "dynamic_int8"], representative_examples=16),
    quantizations=("float32", "dynamic_int8"), vqvae=VQVAEConfig,
    vqvae_train=TrainConfig(epochs=12, learning_rate=2e-3, weight_decay=0.0),
    judge_train=TrainConfig(epochs=10, learning_rate=2e-3),
    sampling=SamplingConfig, generation=GenerationConfig)  # sampling: stored in the model as its defaults


GENERATION_FLAGS = {**SAMPLING_FLAGS, "guidance_scale": ("generation", float, "classifier-free guidance (1 = off)")}
