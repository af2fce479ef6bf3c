"""Model parts every app builds the same way from its `[model]` config section."""

from tfmm.encoders import IMAGE_ENCODERS, TEXT_ENCODERS, build_image_encoder, build_text_encoder, parse_trainable
from tfmm.layers import DECODERS, FUSIONS


def check_model_names(model):
    """Encoder, fusion and decoder names are checked before any data is read, so a typo fails at once."""
    IMAGE_ENCODERS.get(model.image_encoder, "model.image_encoder")
    if hasattr(model, "text_encoder"):
        TEXT_ENCODERS.get(model.text_encoder, "model.text_encoder")
    if hasattr(model, "fusion"):
        FUSIONS.get(model.fusion, "model.fusion")
    if hasattr(model, "decoder"):
        DECODERS.get(model.decoder, "model.decoder")


def build_image_encoder_from(model, image_size):
    """The image encoder of a model config: name, size, local pretrained weights, trainability."""
    options = {}
    if model.image_encoder == "cnn" and hasattr(model, "image_normalization"):
        options["normalization"] = model.image_normalization
    return build_image_encoder(
        model.image_encoder, model.image_encoder_size, image_size, model.image_encoder_weights,
        trainable=parse_trainable(model.image_encoder_trainable, "model.image_encoder_trainable"), **options,
    )


def build_encoders(model, image_size, vocabulary_size):
    """(image encoder, text encoder) from a model config: names, sizes, local pretrained weights, trainability."""
    image_encoder = build_image_encoder_from(model, image_size)
    text_encoder = build_text_encoder(
        model.text_encoder, model.text_encoder_size, vocabulary_size, model.sequence_length, model.text_encoder_weights,
        trainable=parse_trainable(model.text_encoder_trainable, "model.text_encoder_trainable"),
    )
    return image_encoder, text_encoder
