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
from tfmm.layers import TransformerBlock


def _wrap_keras_hub_backbone(backbone, field, image_size=None, sequence_length=None, dtype=None):
    from tfmm.encoders.bert_text_encoder import BertTextEncoder
    from tfmm.encoders.resnet_image_encoder import ResNetImageEncoder
    from tfmm.encoders.vit_image_encoder import ViTImageEncoder

    if isinstance(backbone, keras_hub.models.ViTBackbone):
        return ViTImageEncoder.from_keras_hub(backbone, dtype=dtype)
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


def preset_image_converter(path):
    """The keras-hub image converter saved in a preset directory (its size and normalisation), or None."""
    path = Path(path).expanduser()
    if not path.is_dir() or not (path / "image_converter.json").is_file():
        return None
    return keras_hub.layers.ImageConverter.from_preset(str(path))


def set_trainable(encoder, mode):
    """How much of `encoder` trains (a mode from `parse_trainable`):

    - `"full"` / `"frozen"`: everything / nothing;
    - an int n (`top-n`): for a transformer, its last n blocks and what follows them (final norm, pooling);
      otherwise the last n layers holding weights, looking inside nested keras-hub backbones (for a CNN:
      convolutions and norms);
    - `("freeze", k)`: the embeddings and the first k transformer blocks are frozen, the rest trains;
    - `("lora", r)`: everything frozen, rank-r LoRA adapters on the attention queries and values train
      (keras-hub's `enable_lora`; saving merges them into the kernels).
    """
    if mode is True or mode == "full":
        encoder.trainable = True
        return
    if mode is False or mode == "frozen":
        encoder.trainable = False
        return
    if isinstance(mode, tuple) and mode[0] == "lora":
        encoder.enable_lora(mode[1])
        if not getattr(encoder, "_lora_enabled_layers", None):
            raise TfmmError(f"lora-{mode[1]}: {encoder.name} has no attention query/value layers to adapt")
        return
    if (isinstance(mode, tuple) and mode[0] == "freeze") or (isinstance(mode, int) and mode >= 0):
        blocks = transformer_blocks(encoder)
        order = list(_leaf_blocks(encoder, set(map(id, blocks))))
        if isinstance(mode, tuple):  # the embeddings and the first k blocks are frozen
            if not blocks or mode[1] > len(blocks):
                raise TfmmError(f"freeze-{mode[1]}: {encoder.name} has {len(blocks)} transformer blocks")
            cut = order.index(blocks[mode[1]]) if mode[1] < len(blocks) else order.index(blocks[-1]) + 1
        elif blocks:  # top-n: the last n blocks and what follows them train
            cut = order.index(blocks[-mode]) if 0 < mode <= len(blocks) else (0 if mode else order.index(blocks[-1]) + 1)
        else:  # top-n: the last n layers holding weights train
            weighted = [i for i, layer in enumerate(order) if layer.weights]
            cut = weighted[-mode] if 0 < mode <= len(weighted) else (0 if mode else len(order))
        encoder.trainable = True
        for layer in order[:cut]:  # everything before the cut is frozen
            layer.trainable = False
        return
    raise TfmmError(f"encoder trainable mode must be full, frozen, top-N, freeze-K or lora-R, got {mode!r}")


def transformer_blocks(encoder):
    """The transformer blocks of an encoder, in order (keras-hub's `encoder_layers` / `transformer_layers`
    lists, however deep they sit, or its `TransformerEncoder` / tfmm `TransformerBlock` layers), or [] for one
    without."""
    for layer in encoder._flatten_layers(include_self=True):
        for attribute in ("encoder_layers", "transformer_layers"):
            blocks = getattr(layer, attribute, None)
            if blocks:
                return list(blocks)
    kinds = (keras_hub.layers.TransformerEncoder, TransformerBlock)
    return [layer for layer in _leaf_blocks(encoder) if isinstance(layer, kinds)]


def _leaf_blocks(model, atomic=frozenset()):
    """The layers of `model` in order, looking inside nested keras-hub backbones and inside any layer that
    holds a transformer block; a layer whose id is in `atomic` (a transformer block) counts as one."""
    children = model.layers if isinstance(model, keras.Model) else model._flatten_layers(include_self=False,
                                                                                          recursive=False)
    for layer in children:
        opens = id(layer) not in atomic and (isinstance(layer, keras_hub.models.Backbone) or any(
            id(sub) in atomic for sub in layer._flatten_layers(include_self=False)))
        if opens:
            yield from _leaf_blocks(layer, atomic)
        else:
            yield layer


def parse_trainable(value, field):
    """A config's `trainable` value: "full", "frozen", "top-N" (the last N blocks train), "freeze-K" (the
    embeddings and first K transformer blocks are frozen) or "lora-R" (rank-R LoRA adapters only)."""
    if value in ("full", "frozen"):
        return value
    kind, _, count = value.partition("-")
    if kind == "top" and count.isdigit():
        return int(count)
    if kind in ("freeze", "lora") and count.isdigit() and (kind == "freeze" or int(count) > 0):
        return kind, int(count)
    raise TfmmError(f"{field} must be full, frozen, top-N, freeze-K or lora-R, got {value!r}")
