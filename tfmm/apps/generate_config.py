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
    differences,
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
    # + this × the MSE of neighbouring pixels' differences (outlines). One run each: 4 took the judge on the
    # reconstructions 0.680 → 0.845 (test) and 0.620 → 0.840 (held-out) in the same time; not the default until
    # the token model is retrained on it (BENCHMARKS.md notes, generate)
    edge_weight: float = at_least(0, 0.0)

    def validate(self, root):
        if root.data.image_size % self.downsample:
            raise TfmmError(f"data.image_size {root.data.image_size} is not divisible by vqvae.downsample {self.downsample}")


@dataclasses.dataclass
class TokenModelConfig:
    # "tokens": the VQ-VAE + token transformer below; "gan": the text-to-image GAN of the `gan` section, trained
    # with `gan_train` (the token model's sections then must stay at their defaults, and the GAN's otherwise).
    generator: str = one_of(("tokens", "gan"), "tokens")
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


@dataclasses.dataclass
class GANConfig:
    """The text-to-image GAN (`model.generator = "gan"`): sizes of both networks and the loss."""
    noise_dim: int = positive(64)
    channels: int = positive(128)  # the generator's 4×4 map and the discriminator's widest layer
    text_dim: int = positive(64)  # each network's own text encoder (a small Transformer)
    text_layers: int = positive(1)
    attention_heads: int = positive(2)
    attention_sizes: list = dataclasses.field(default_factory=lambda: [8, 16])  # generator sizes with word attention
    r1_gamma: float = at_least(0, 1.0)  # R1 penalty weight on real matched pairs
    discriminator_learning_rate: float = positive(4.0)  # × the generator's learning rate (two time-scales)

    def validate(self, root):
        if root.gan_train.early_stopping_patience:
            raise TfmmError("gan_train.early_stopping_patience: a GAN has no validation loss to stop on (its last "
                            "weights are kept); leave it at 0")
        if self.text_dim % self.attention_heads:
            raise TfmmError(f"gan.text_dim {self.text_dim} is not divisible by gan.attention_heads {self.attention_heads}")
        sizes = [4 * 2 ** k for k in range(1, 8) if 4 * 2 ** k <= root.data.image_size]
        wrong = [size for size in self.attention_sizes if size not in sizes]
        if wrong:
            raise TfmmError(f"gan.attention_sizes {wrong}: the generator's feature maps at {root.data.image_size}px are "
                            f"{sizes}")


# `model` is stage 2 (the token transformer); the VQ-VAE and the judge train with their own sections. The exported
# TFLite file is the VQ-VAE decoder: float32 and dynamic_int8.
GenerateConfig = app_config(
    "GenerateConfig", GenerateDataConfig, TokenModelConfig, TrainConfig(epochs=12, learning_rate=1e-3),
    ExportConfig(tflite_quantization=["float32", "dynamic_int8"], representative_examples=16),
    quantizations=("float32", "dynamic_int8"), vqvae=VQVAEConfig, gan=GANConfig,
    gan_train=TrainConfig(epochs=20, learning_rate=1e-4, weight_decay=0.0, adam_beta_1=0.5, clipnorm=0.0),
    vqvae_train=TrainConfig(epochs=12, learning_rate=2e-3, weight_decay=0.0),
    judge_train=TrainConfig(epochs=10, learning_rate=2e-3),
    sampling=SamplingConfig, generation=GenerationConfig)  # sampling: stored in the model as its defaults


# What each generator does not read: set away from its default, it is an error, not silently ignored. Runs go to
# `train.output_dir` for both (where eval and export look for the latest).
_NOT_READ = {"tokens": ("gan", "gan_train"),
             "gan": ("vqvae", "vqvae_train", "train", "gan_train.output_dir", "model.hidden_dim", "model.num_layers", "model.num_heads",
                     "model.intermediate_dim", "model.dropout", "data.text_dropout", "data.augment", "generation.guidance_scale",
                     "generation.edit_candidates", "sampling.top_k", "sampling.top_p")}

_WHY_NOT = {"sampling.top_k": "the GAN draws no tokens", "sampling.top_p": "the GAN draws no tokens",
            "generation.guidance_scale": "the GAN has no classifier-free guidance"}


def check_generator_settings(config):
    """Raises on a setting the chosen generator (`model.generator`) would ignore."""
    defaults = GenerateConfig()
    for key in _NOT_READ[config.model.generator]:
        section, _, field = key.partition(".")
        ours, default = getattr(config, section), getattr(defaults, section)
        if field:
            ours, default = getattr(ours, field), getattr(default, field)
        elif section == "train" and ours == dataclasses.replace(config.gan_train, output_dir=ours.output_dir):
            continue  # a GAN run's own config: its training ran with gan_train's settings in `train`
        changed = differences(default, ours, f"{section}.") if dataclasses.is_dataclass(ours) else (
            [f"{key}: {default!r} → {ours!r}"] if ours != default else [])
        changed = [c for c in changed if not c.startswith("train.output_dir:")]
        if changed:
            name = changed[0].split(":")[0]
            why = f" ({_WHY_NOT[name]})" if name in _WHY_NOT else ""
            raise TfmmError(f"{name} is set, but model.generator = {config.model.generator!r} does not use it{why}")


GENERATION_FLAGS = {**SAMPLING_FLAGS, "guidance_scale": ("generation", float, "classifier-free guidance (1 = off)")}
