"""Image and text encoders, looked up by the names configs use.

Every encoder is a functional keras-hub `Backbone`: `save_to_preset(dir)` and
`Backbone.from_preset(dir)` work for all of them. Image encoders take `images`
(float 0..1); text encoders take `token_ids` and `padding_mask`. All return
`sequence_output` and `pooled_output`, and expose `output_dim`.
"""

from tfmm.encoders import bert_text_encoder, cnn_image_encoder, gru_text_encoder
from tfmm.encoders import resnet_image_encoder, transformer_text_encoder, vit_image_encoder
from tfmm.encoders.bert_text_encoder import BertTextEncoder
from tfmm.encoders.cnn_image_encoder import CNNImageEncoder
from tfmm.encoders.gru_text_encoder import GRUTextEncoder
from tfmm.encoders.pretrained import load_pretrained_encoder, parse_trainable, preset_vocabulary, set_trainable
from tfmm.encoders.resnet_image_encoder import ResNetImageEncoder
from tfmm.encoders.transformer_text_encoder import TransformerTextEncoder
from tfmm.encoders.vit_image_encoder import ViTImageEncoder
from tfmm.errors import TfmmError
from tfmm.registry import Registry

IMAGE_ENCODERS = Registry("image encoder")
TEXT_ENCODERS = Registry("text encoder")


def _size(sizes, size, name):
    if size not in sizes:
        raise TfmmError(f"unknown size {size!r} for encoder {name!r}; valid: {', '.join(sizes)}")
    return sizes[size]


def _no_options(name, options):
    if options:
        raise TfmmError(f"image encoder {name!r} takes no options; got {', '.join(options)}")


@IMAGE_ENCODERS.register("cnn")
def _cnn(size, image_size, dtype=None, normalization="group"):
    if normalization not in ("group", "batch"):
        raise TfmmError(f"cnn normalization must be group or batch, got {normalization!r}")
    return CNNImageEncoder(image_size=image_size, normalization=normalization, dtype=dtype,
                           **_size(cnn_image_encoder.SIZES, size, "cnn"))


@IMAGE_ENCODERS.register("resnet")
def _resnet(size, image_size, dtype=None, **options):
    _no_options("resnet", options)
    _size(resnet_image_encoder.SIZES, size, "resnet")
    return ResNetImageEncoder.from_size(size, image_size, dtype=dtype)


@IMAGE_ENCODERS.register("vit")
def _vit(size, image_size, dtype=None, **options):
    _no_options("vit", options)
    _size(vit_image_encoder.SIZES, size, "vit")
    return ViTImageEncoder.from_size(size, image_size, dtype=dtype)


@TEXT_ENCODERS.register("gru")
def _gru(size, vocabulary_size, sequence_length, dtype=None):
    return GRUTextEncoder(vocabulary_size, sequence_length, dtype=dtype, **_size(gru_text_encoder.SIZES, size, "gru"))


@TEXT_ENCODERS.register("transformer")
def _transformer(size, vocabulary_size, sequence_length, dtype=None):
    sizes = _size(transformer_text_encoder.SIZES, size, "transformer")
    return TransformerTextEncoder(vocabulary_size, sequence_length, dtype=dtype, **sizes)


@TEXT_ENCODERS.register("bert")
def _bert(size, vocabulary_size, sequence_length, dtype=None):
    _size(bert_text_encoder.SIZES, size, "bert")
    return BertTextEncoder.from_size(size, vocabulary_size, sequence_length, dtype=dtype)


def build_image_encoder(name, size, image_size, weights="", trainable=True, dtype=None, **options):
    """Builds an image encoder from its config name and size, or from local pretrained weights.

    `options` go to the encoder's factory (the cnn takes `normalization`: "group" or "batch").
    """
    factory = IMAGE_ENCODERS.get(name, "model.image_encoder")
    if weights:
        encoder = load_pretrained_encoder(weights, "model.image_encoder_weights",
                                          lambda: factory(size, image_size, dtype, **options),
                                          image_size=image_size, dtype=dtype)
    else:
        encoder = factory(size, image_size, dtype, **options)
    set_trainable(encoder, trainable)
    return encoder


def build_text_encoder(name, size, vocabulary_size, sequence_length, weights="", trainable=True, dtype=None):
    """Builds a text encoder from its config name and size, or from local pretrained weights."""
    factory = TEXT_ENCODERS.get(name, "model.text_encoder")
    if weights:
        encoder = load_pretrained_encoder(weights, "model.text_encoder_weights",
                                          lambda: factory(size, vocabulary_size, sequence_length, dtype),
                                          sequence_length=sequence_length, dtype=dtype)
    else:
        encoder = factory(size, vocabulary_size, sequence_length, dtype)
    set_trainable(encoder, trainable)
    return encoder


__all__ = [
    "IMAGE_ENCODERS", "TEXT_ENCODERS", "BertTextEncoder", "CNNImageEncoder", "GRUTextEncoder", "ResNetImageEncoder",
    "TransformerTextEncoder", "ViTImageEncoder", "build_image_encoder", "build_text_encoder", "parse_trainable", "preset_vocabulary",
]
