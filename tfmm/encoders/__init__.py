"""Image and text encoders, looked up by the names configs use.

Every encoder is a functional keras-hub `Backbone`: `save_to_preset(dir)` and
`Backbone.from_preset(dir)` work for all of them. Image encoders take `images`
(float, 0..1); text encoders take `token_ids` and `padding_mask`. All return
`sequence_output` and `pooled_output`, and expose `output_dim`.

A config names an encoder in a section of its own, with the options that encoder takes:

    [model.image_encoder]
    name = "cnn"            # cnn, resnet, vit
    size = "small"          # tiny, small, base
    normalization = "batch" # cnn only
"""

import dataclasses

from tfmm.config import one_of
from tfmm.encoders import (
    bert_text_encoder,
    cnn_image_encoder,
    gru_text_encoder,
    resnet_image_encoder,
    transformer_text_encoder,
    vit_image_encoder,
)
from tfmm.encoders.bert_text_encoder import BertTextEncoder
from tfmm.encoders.cnn_image_encoder import CNNImageEncoder
from tfmm.encoders.gru_text_encoder import GRUTextEncoder
from tfmm.encoders.pretrained import (
    load_pretrained_encoder,
    parse_trainable,
    preset_image_converter,
    preset_vocabulary,
    set_trainable,
)
from tfmm.encoders.resnet_image_encoder import ResNetImageEncoder
from tfmm.encoders.transformer_text_encoder import TransformerTextEncoder
from tfmm.encoders.vit_image_encoder import ViTImageEncoder
from tfmm.errors import TfmmError
from tfmm.registry import Registry

IMAGE_ENCODERS = Registry("image encoder")
TEXT_ENCODERS = Registry("text encoder")
SIZE_NAMES = ("tiny", "small", "base")


def _trainable_rule(value):
    try:
        parse_trainable(value, "trainable")
    except TfmmError:
        return "must be full, frozen, top-N, freeze-K or lora-R"
    return None


@dataclasses.dataclass
class EncoderOptions:
    """What every encoder takes: a size preset, local pretrained weights, and how much of it trains."""

    name: str = ""
    size: str = one_of(SIZE_NAMES, "small")
    weights: str = ""  # a keras-hub preset directory or a .weights.h5 (local files only)
    trainable: str = dataclasses.field(default="full", metadata={"check": _trainable_rule})  # see parse_trainable


@dataclasses.dataclass
class CNNOptions(EncoderOptions):
    name: str = "cnn"
    # Group norm suits contrastive training (no batch statistics to lean on); batch norm keeps the absolute
    # colours that VQA and captions ask about (group norm rescales each image by its own statistics).
    normalization: str = one_of(("group", "batch"), "group")
    final_stride: int = one_of((1, 2), 2)  # 1: the last stage does not halve, a grid of regions twice as fine
    # Each pixel's column and row as two more input channels (CoordConv). Off by default: on the assistant it made
    # answers about objects worse (test 0.934 → 0.832; BENCHMARKS.md notes, assistant).
    coordinates: bool = False


@dataclasses.dataclass
class ResNetOptions(EncoderOptions):
    name: str = "resnet"


@dataclasses.dataclass
class ViTOptions(EncoderOptions):
    name: str = "vit"

    def validate(self, root):
        patch = vit_image_encoder.SIZES[self.size]["patch_size"]
        image_size = root.data.image_size
        if not self.weights and image_size % patch:
            raise TfmmError(f"data.image_size {image_size} is not divisible by the patch size {patch} of "
                            f"model.image_encoder vit {self.size}")


@dataclasses.dataclass
class GRUOptions(EncoderOptions):
    name: str = "gru"


@dataclasses.dataclass
class TransformerOptions(EncoderOptions):
    name: str = "transformer"


@dataclasses.dataclass
class BertOptions(EncoderOptions):
    name: str = "bert"


def _check_size(sizes, size, name):
    if size not in sizes:
        raise TfmmError(f"unknown size {size!r} for encoder {name!r}; valid: {', '.join(sizes)}")
    return sizes[size]


@IMAGE_ENCODERS.register("cnn", CNNOptions)
def _cnn(options, image_size, dtype=None):
    return CNNImageEncoder(image_size=image_size, normalization=options.normalization,
                           final_stride=options.final_stride,
                           coordinates=options.coordinates, dtype=dtype,
                           **_check_size(cnn_image_encoder.SIZES, options.size, "cnn"))


@IMAGE_ENCODERS.register("resnet", ResNetOptions)
def _resnet(options, image_size, dtype=None):
    _check_size(resnet_image_encoder.SIZES, options.size, "resnet")
    return ResNetImageEncoder.from_size(options.size, image_size, dtype=dtype)


@IMAGE_ENCODERS.register("vit", ViTOptions)
def _vit(options, image_size, dtype=None):
    _check_size(vit_image_encoder.SIZES, options.size, "vit")
    return ViTImageEncoder.from_size(options.size, image_size, dtype=dtype)


@TEXT_ENCODERS.register("gru", GRUOptions)
def _gru(options, vocabulary_size, sequence_length, dtype=None):
    return GRUTextEncoder(vocabulary_size, sequence_length, dtype=dtype,
                          **_check_size(gru_text_encoder.SIZES, options.size, "gru"))


@TEXT_ENCODERS.register("transformer", TransformerOptions)
def _transformer(options, vocabulary_size, sequence_length, dtype=None):
    sizes = _check_size(transformer_text_encoder.SIZES, options.size, "transformer")
    return TransformerTextEncoder(vocabulary_size, sequence_length, dtype=dtype, **sizes)


@TEXT_ENCODERS.register("bert", BertOptions)
def _bert(options, vocabulary_size, sequence_length, dtype=None):
    _check_size(bert_text_encoder.SIZES, options.size, "bert")
    return BertTextEncoder.from_size(options.size, vocabulary_size, sequence_length, dtype=dtype)


def image_encoder_options(name, **values):
    """The options of image encoder `name` (e.g. `image_encoder_options("cnn", size="tiny")`)."""
    return IMAGE_ENCODERS.options(name, "model.image_encoder")(**values)


def text_encoder_options(name, **values):
    return TEXT_ENCODERS.options(name, "model.text_encoder")(**values)


def build_image_encoder(options, image_size, dtype=None):
    """An image encoder from its options (a size preset, or local pretrained weights; trainability)."""
    factory = IMAGE_ENCODERS.get(options.name, "model.image_encoder")
    if options.weights:
        encoder = load_pretrained_encoder(options.weights, "model.image_encoder.weights",
                                          lambda: factory(options, image_size, dtype), image_size=image_size, dtype=dtype)
    else:
        encoder = factory(options, image_size, dtype)
    set_trainable(encoder, parse_trainable(options.trainable, "model.image_encoder.trainable"))
    return encoder


def build_text_encoder(options, vocabulary_size, sequence_length, dtype=None):
    """A text encoder from its options (a size preset, or local pretrained weights; trainability)."""
    factory = TEXT_ENCODERS.get(options.name, "model.text_encoder")
    if options.weights:
        encoder = load_pretrained_encoder(options.weights, "model.text_encoder.weights",
                                          lambda: factory(options, vocabulary_size, sequence_length, dtype),
                                          sequence_length=sequence_length, dtype=dtype)
    else:
        encoder = factory(options, vocabulary_size, sequence_length, dtype)
    set_trainable(encoder, parse_trainable(options.trainable, "model.text_encoder.trainable"))
    return encoder


__all__ = [
    "IMAGE_ENCODERS", "TEXT_ENCODERS", "BertTextEncoder", "CNNImageEncoder", "EncoderOptions", "GRUTextEncoder",
    "ResNetImageEncoder", "TransformerTextEncoder", "ViTImageEncoder", "build_image_encoder", "build_text_encoder",
    "image_encoder_options", "parse_trainable", "preset_image_converter", "preset_vocabulary", "text_encoder_options",
]
