"""The assistant app's config: data, the model (image encoder, projector, language model), the two trainings."""

import dataclasses
import math

from tfmm.config import (
    DataConfig,
    ExportConfig,
    SamplingConfig,
    TrainConfig,
    app_config,
    at_least,
    between,
    one_of,
    positive,
    variant,
)
from tfmm.encoders import IMAGE_ENCODERS, build_image_encoder
from tfmm.errors import TfmmError

FAMILIES = ("gpt2", "gemma")


@dataclasses.dataclass
class AssistantDataConfig(DataConfig):
    # "shapes" (the built-in instruction set), a folder with train/validation/test.json in LLaVA's conversation
    # format, or one such .json file (split by the suite's hash of the image path)
    source: str = "shapes"
    easy_vqa: bool = True  # built-in set: the easy-VQA training images' questions join the training conversations
    # The alignment stage's caption conversations: "auto" (the built-in set's `captions`; for a user folder its
    # captions.json, else no alignment stage), a LLaVA .json file, or "none" (instruction tuning only)
    captions: str = "auto"
    batch_size: int = positive(32)


@dataclasses.dataclass
class LanguageModelOptions:
    family: str = one_of(FAMILIES, "gpt2")
    # A local keras-hub causal-LM preset folder (GPT-2 or Gemma): its backbone and tokenizer replace the sizes below
    # and the learnt vocabulary; empty = a language model built from these sizes, trained from scratch.
    preset: str = ""
    num_layers: int = positive(4)
    hidden_dim: int = positive(128)
    num_heads: int = positive(4)
    intermediate_dim: int = positive(512)
    dropout: float = between(0, 1, 0.0)
    # Instruction tuning trains only rank-r LoRA adapters on the language model's attention (queries and values);
    # 0 = the whole language model trains.
    lora_rank: int = at_least(0, 0)


@dataclasses.dataclass
class AssistantModelConfig:
    image_encoder: object = variant(IMAGE_ENCODERS, "cnn", size="small", normalization="batch")
    language_model: LanguageModelOptions = dataclasses.field(default_factory=LanguageModelOptions)
    sequence_length: int = positive(72)  # word positions of a conversation (the image tokens come on top)
    max_reply_length: int = positive(24)  # tokens of one reply, its end token included
    vocabulary_size: int = positive(600)  # the learnt WordPiece vocabulary (not with language_model.preset)
    # + this × the cross-entropy of each image region's shape and colour classes against the label maps of the
    # training conversations (`tfmm.data.region_labels`; the built-in set has them, a user's file may: every
    # training conversation then needs one): the image encoder learns what each region shows, which answers alone
    # hardly taught it; -1 = 1.0 on the built-in set, 0 elsewhere
    region_weight: float = at_least(-1, -1)
    # One image token per m×m block of the image encoder's regions, their features side by side: a finer grid
    # (model.image_encoder.final_stride = 1) for the same number of image tokens; 1 = a token per region. With 2
    # and that grid, one seed against the same seed without: test 0.944 → 0.930 (relations 0.78 → 0.76, colour
    # 0.90 → 0.85), held-out phrasings 0.941 → 0.871: not the default (BENCHMARKS.md, assistant)
    merge_regions: int = positive(1)
    # "grid": a learnt row and column embedding on each image token (`tfmm.layers.GridPositions`), so "left of"
    # compares one column vector instead of the language model's separate positions; "none": only those. Four
    # runs of "grid" scored 0.849–0.968 on test (mean 0.930; "none": 0.923–0.944, mean 0.934): a higher best,
    # a worse worst (yes/no collapsed in one), so not the default (BENCHMARKS.md notes, assistant)
    image_positions: str = one_of(("none", "grid"), "none")

    def validate(self, root):
        lm, defaults = self.language_model, LanguageModelOptions()
        if lm.preset:
            fixed = [f.name for f in dataclasses.fields(lm)
                     if f.name not in ("preset", "lora_rank") and getattr(lm, f.name) != getattr(defaults, f.name)]
            if self.vocabulary_size != AssistantModelConfig.vocabulary_size:
                fixed.append("vocabulary_size")
            if fixed:
                raise TfmmError(f"model.language_model.preset {lm.preset} fixes {', '.join(fixed)}: leave them out")
        if root.align_train.output_dir not in (TrainConfig().output_dir, root.train.output_dir):
            raise TfmmError(f"align_train.output_dir {root.align_train.output_dir}: stage 1 writes its run inside "
                            f"stage 2's (<run>/alignment); set train.output_dir")
        if lm.preset and root.export.tflite:
            raise TfmmError(f"model.language_model.preset {lm.preset}: the TFLite loop tokenizes with WordPiece, a "
                            "preset brings its own tokenizer; set export.tflite = false")
        if lm.hidden_dim % lm.num_heads:
            raise TfmmError(f"model.language_model.hidden_dim {lm.hidden_dim} is not divisible by num_heads "
                            f"{lm.num_heads}")
        if self.merge_regions > 1 or self.image_positions == "grid":
            regions = build_image_encoder(self.image_encoder, root.data.image_size).output["sequence_output"].shape[1]
            grid = math.isqrt(regions)
            if grid * grid != regions or grid % self.merge_regions:
                what = f"model.merge_regions {self.merge_regions} must divide the side of" if self.merge_regions > 1 \
                    else 'model.image_positions "grid" (or set "none") needs'
                raise TfmmError(f"{what} the image encoder's square grid of regions ({regions} regions at "
                                f"data.image_size {root.data.image_size})")
        if self.max_reply_length >= self.sequence_length:
            raise TfmmError(f"model.max_reply_length {self.max_reply_length} leaves no room for the question in "
                            f"model.sequence_length {self.sequence_length}")

    def region_loss_weight(self, data):
        if self.region_weight >= 0:
            return self.region_weight
        return 1.0 if data.source == "shapes" else 0.0


# In-graph decoding with a key/value cache: TFLite takes float32 and dynamic-range int8 (no calibrated int8 for a
# cache state). Schedules measured on a 2-core Xeon (AVX-512; BENCHMARKS.md, assistant): stage 1 at 8 epochs
# (captions name every object's shape, colour and size: where the image encoder learns to read them) and stage 2 at
# learning rate 2e-3 took test exact match from 0.60 to 0.65 and easy-VQA shape answers from 0.44 to 0.69 at 12
# epochs; the validation loss still fell, so stage 2 runs 18. The region target (model.region_weight) then took test
# exact match from 0.70 to 0.85 with the same schedule. Built-in set version 6 doubled the training scenes (the
# model over-fitted 6,000), so stage 2 runs 12 epochs over 12,000 (+7 % steps).
AssistantConfig = app_config(
    "AssistantConfig", AssistantDataConfig, AssistantModelConfig, TrainConfig(epochs=12, learning_rate=2e-3),
    ExportConfig(tflite_quantization=["float32", "dynamic_int8"], representative_examples=32),
    quantizations=("float32", "dynamic_int8"), sampling=SamplingConfig,
    align_train=TrainConfig(epochs=8, learning_rate=2e-3))
