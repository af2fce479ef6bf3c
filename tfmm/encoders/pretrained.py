"""Pretrained encoder weights from local files only: a keras-hub preset directory or a `.weights.h5`.

A preset directory may hold a tfmm encoder (saved with `encoder.save_to_preset`) or a
plain keras-hub backbone (`ViTBackbone`, `ResNetBackbone`, `BertBackbone`), which is
wrapped in the matching tfmm encoder. Nothing is ever downloaded.
"""

import json
from pathlib import Path

import keras
import keras_hub

from tfmm.errors import TfmmError


def _wrap_keras_hub_backbone(backbone, field, image_size=None, sequence_length=None, dtype=None):
    from tfmm.encoders.bert_text_encoder import BertTextEncoder
    from tfmm.encoders.resnet_image_encoder import ResNetImageEncoder
    from tfmm.encoders.vit_image_encoder import ViTImageEncoder

    if isinstance(backbone, keras_hub.models.ViTBackbone):
        return ViTImageEncoder(backbone=backbone, dtype=dtype)
    if isinstance(backbone, keras_hub.models.ResNetBackbone):
        return ResNetImageEncoder(backbone=backbone, image_size=image_size, dtype=dtype)
    if isinstance(backbone, keras_hub.models.BertBackbone):
        return BertTextEncoder(backbone=backbone, sequence_length=sequence_length, dtype=dtype)
    raise TfmmError(f"{field}: preset holds a {type(backbone).__name__}, which tfmm cannot use as an encoder")


def load_pretrained_encoder(path, field, build, image_size=None, sequence_length=None, dtype=None):
    """Returns an encoder with weights from `path`; `build()` makes the architecture for a `.weights.h5`."""
    path = Path(path).expanduser()
    if not path.exists():
        raise TfmmError(f"{field}: pretrained weights not found: {path}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TfmmError(f"{field}: {path} is not a keras-hub preset directory (no config.json)")
        kwargs = {"dtype": dtype} if dtype else {}
        loaded = keras_hub.models.Backbone.from_preset(str(path), **kwargs)
        if hasattr(loaded, "output_dim"):  # already a tfmm encoder
            encoder = loaded
        else:
            encoder = _wrap_keras_hub_backbone(loaded, field, image_size, sequence_length, dtype)
        size = getattr(encoder, "image_size", None)
        if image_size and size and size != image_size:
            raise TfmmError(f"{field}: preset {path} takes {size}×{size} images but data.image_size is {image_size}")
        return encoder
    if not path.name.endswith(".weights.h5"):
        raise TfmmError(f"{field}: {path} is neither a preset directory nor a .weights.h5 file")
    encoder = build()
    try:
        encoder.load_weights(str(path))
    except (ValueError, KeyError, OSError) as error:
        raise TfmmError(f"{field}: weights in {path} do not fit the configured encoder: {error}") from None
    return encoder


def preset_vocabulary(path):
    """The WordPiece vocabulary saved in a keras-hub preset directory, or None if it has no tokenizer.

    keras-hub finds a preset's tokenizer class through its backbone class; tfmm's own encoders have
    no tokenizer class of their own, so their presets' `tokenizer.json` is read directly.
    """
    path = Path(path).expanduser()
    if not path.is_dir() or not (path / "tokenizer.json").is_file():
        return None
    try:
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(path))
    except ValueError:
        config = json.loads((path / "tokenizer.json").read_text())
        tokenizer = keras.saving.deserialize_keras_object(config)
        tokenizer.load_preset_assets(str(path))
    return list(tokenizer.get_vocabulary())


def set_trainable(encoder, mode):
    """`True`/"full": train everything; `False`/"frozen": nothing; an int n: only the last n layers.

    The last layers are the last n layers holding weights, looking inside nested
    keras-hub backbones (for a CNN: convolutions and norms; for keras-hub's ViT the
    encoder stack counts as one layer).
    """
    if mode is True or mode == "full":
        encoder.trainable = True
        return
    if mode is False or mode == "frozen":
        encoder.trainable = False
        return
    if isinstance(mode, int) and mode >= 0:
        layers = [layer for layer in _leaf_blocks(encoder) if layer.weights]
        encoder.trainable = True
        for layer in layers[: max(len(layers) - mode, 0)]:
            layer.trainable = False
        return
    raise TfmmError(f"encoder trainable mode must be full, frozen or a block count, got {mode!r}")


def _leaf_blocks(model):
    for layer in model.layers:
        if isinstance(layer, keras_hub.models.Backbone):
            yield from _leaf_blocks(layer)
        else:
            yield layer


def parse_trainable(value, field):
    """A config's `*_trainable` value: "full", "frozen" or "top-N" (fine-tune the last N blocks)."""
    if value in ("full", "frozen"):
        return value
    if value.startswith("top-") and value[4:].isdigit():
        return int(value[4:])
    raise TfmmError(f"{field} must be full, frozen or top-N, got {value!r}")
