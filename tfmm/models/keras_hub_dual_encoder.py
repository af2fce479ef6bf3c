"""keras-hub's pretrained CLIP and SigLIP behind the retrieval task's dual-encoder interface.

`load_dual_encoder_preset(path)` reads a local keras-hub preset directory (`CLIPBackbone` or
`SigLIPBackbone`, with its tokenizer and image converter) and returns the pieces a
`ContrastiveRetriever` is made of; everything downstream (zero-shot, index, search, fine-tuning,
export, `from_preset` of the trained task) then works as for tfmm's own dual encoder. Nothing is
downloaded: a Kaggle handle works only where keras-hub can fetch it, and the tests build tiny
random presets with keras-hub's own classes.
"""

import dataclasses
import json
import math
from pathlib import Path

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from tfmm.errors import TfmmError
from tfmm.layers.image_converter import ImageConverter
from tfmm.models.contrastive_retriever import ContrastiveRetriever
from tfmm.models.contrastive_retriever_preprocessor import ContrastiveRetrieverPreprocessor

# family -> (keras-hub backbone class, tokenizer class, default text length, text clean-up)
FAMILIES = {
    "clip": (keras_hub.models.CLIPBackbone, keras_hub.tokenizers.CLIPTokenizer, 77, "lower"),
    "siglip": (keras_hub.models.SigLIPBackbone, keras_hub.tokenizers.SigLIPTokenizer, 64, "canonical"),
}
_PUNCTUATION = r"!|\"|#|\$|%|&|\\|'|\(|\)|\*|\+|,|-|\.|/|:|;|<|=|>|\?|@|\[|\]|\^|_|`|{|\||}|~"


@keras.saving.register_keras_serializable(package="tfmm")
class KerasHubDualEncoder(keras_hub.models.Backbone):
    """A keras-hub `CLIPBackbone` / `SigLIPBackbone` as tfmm's dual encoder: inputs `images`, `token_ids`,
    `padding_mask` (unused by these families: CLIP pools at the end token, SigLIP at the last position),
    outputs unit-length `image_embedding` and `text_embedding` (float32); `image_embedder()` and
    `text_embedder()` are the single towers the index and the export use. `image_encoder` /
    `text_encoder` are the keras-hub towers, so trainability settings apply to them as to tfmm's encoders.
    """

    def __init__(self, dual_encoder, sequence_length, dtype=None, **kwargs):
        if isinstance(dual_encoder, dict):
            dual_encoder = keras.layers.deserialize(dual_encoder)
        self.dual_encoder = dual_encoder
        self.image_encoder, self.text_encoder = dual_encoder.vision_encoder, dual_encoder.text_encoder
        # keras-hub's head (logit scale, SigLIP's bias) is not in this graph: the task's ContrastiveHead
        # starts from its values; frozen here, so no optimizer sees a weight without gradients.
        _head(dual_encoder).trainable = False
        images = keras.Input(self.image_encoder.image_shape, name="images")
        token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((sequence_length,), dtype="int32", name="padding_mask")
        super().__init__(inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
                         outputs={"image_embedding": self._image_embedding(images),
                                  "text_embedding": self._text_embedding(token_ids, padding_mask)},
                         dtype=dtype, **kwargs)
        self.sequence_length_ = sequence_length

    def _image_embedding(self, images):
        return _unit(self.dual_encoder.get_vision_embeddings(images))

    def _text_embedding(self, token_ids, padding_mask):
        # Multiplying by zero keeps `padding_mask` an input of the graph, as tfmm's towers take it.
        return _unit(self.dual_encoder.get_text_embeddings(token_ids)) + 0.0 * ops.cast(padding_mask[:, :1], "float32")

    @property
    def family(self):
        return next(name for name, (cls, *_) in FAMILIES.items() if isinstance(self.dual_encoder, cls))

    @property
    def embedding_dim(self):
        return int(self.output["image_embedding"].shape[-1])

    @property
    def image_size(self):
        return int(self.image_encoder.image_shape[0])

    @property
    def sequence_length(self):
        return self.sequence_length_

    def _tower(self, name, build):
        towers = self.__dict__.setdefault("_towers", {})  # untracked: the towers share this model's weights
        if name not in towers:
            towers[name] = build()
        return towers[name]

    def image_embedder(self):
        def build():
            images = keras.Input(self.image_encoder.image_shape, name="images")
            return keras.Model(images, {"embedding": self._image_embedding(images)}, name="image_embedder")
        return self._tower("image", build)

    def text_embedder(self):
        def build():
            token_ids = keras.Input((self.sequence_length,), dtype="int32", name="token_ids")
            padding_mask = keras.Input((self.sequence_length,), dtype="int32", name="padding_mask")
            return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask},
                               {"embedding": self._text_embedding(token_ids, padding_mask)}, name="text_embedder")
        return self._tower("text", build)

    def projection_layers(self):
        """The layers after each tower that map it into the shared space (trained with the tower)."""
        if self.family == "clip":
            return {"image": [self.dual_encoder.vision_projection], "text": [self.dual_encoder.text_projection]}
        return {"image": [], "text": []}  # SigLIP's heads sit inside its encoders

    def get_config(self):
        config = super().get_config()
        config.update(dual_encoder=keras.layers.serialize(self.dual_encoder), sequence_length=self.sequence_length)
        return config


def _head(dual_encoder):
    return getattr(dual_encoder, "clip_head", None) or dual_encoder.siglip_head


def _unit(x):
    x = ops.cast(x, "float32")
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


@keras.saving.register_keras_serializable(package="tfmm")
class KerasHubDualEncoderPreprocessor(ContrastiveRetrieverPreprocessor):
    """The retrieval preprocessor with a keras-hub CLIP (BPE) or SigLIP (SentencePiece) tokenizer and
    that family's packing and text clean-up: CLIP lower-cases and packs start + text + end; SigLIP
    lower-cases, strips punctuation and packs text + end, padded to its fixed length."""

    def __init__(self, tokenizer=None, image_converter=None, sequence_length=None, family="clip", **kwargs):
        super().__init__(tokenizer, image_converter, sequence_length, **kwargs)
        if family not in FAMILIES:
            raise TfmmError(f"unknown keras-hub dual-encoder family {family!r}; valid: {', '.join(FAMILIES)}")
        self.family = family

    def packing_ids(self):
        start = self.tokenizer.start_token_id if self.family == "clip" else None
        return {"start_value": start, "end_value": self.tokenizer.end_token_id, "pad_value": self.tokenizer.pad_token_id}

    def standardize(self, texts):
        texts = tf.strings.lower(texts)
        if FAMILIES[self.family][3] == "canonical":
            texts = tf.strings.strip(tf.strings.regex_replace(tf.strings.regex_replace(texts, _PUNCTUATION, ""), r"\s+", " "))
        return texts

    def tokenize_numpy(self, texts):
        return {key: value.numpy() for key, value in self.tokenize([str(t) for t in texts]).items()}

    def special_ids(self):
        return [i for i in self.packing_ids().values() if i is not None]

    def get_config(self):
        return {**super().get_config(), "family": self.family}


@keras.saving.register_keras_serializable(package="tfmm")
class KerasHubContrastiveRetriever(ContrastiveRetriever):
    """The retrieval task over a keras-hub CLIP/SigLIP (its own class so that keras-hub's preset loader
    pairs it with `KerasHubDualEncoder`); everything else is `ContrastiveRetriever`'s."""

    backbone_cls = KerasHubDualEncoder
    preprocessor_cls = KerasHubDualEncoderPreprocessor


@dataclasses.dataclass
class DualEncoderPreset:
    """What a keras-hub dual-encoder preset gives a `ContrastiveRetriever`."""

    backbone: KerasHubDualEncoder
    preprocessor: KerasHubDualEncoderPreprocessor
    logit_scale: float  # exp of the preset's learnt log scale
    logit_bias: float | None  # SigLIP's learnt bias; None for CLIP


def preset_family(path, field="model.preset"):
    """The family ("clip" / "siglip") of the keras-hub preset at `path`; a one-line error otherwise."""
    path = Path(path).expanduser()
    if not path.exists() and "/" not in str(path):
        raise TfmmError(f"{field}: {path} is not a local directory; tfmm downloads nothing at run time: save the "
                        f"keras-hub preset to a directory once on a machine with network access (README)")
    if not (path / "config.json").is_file():
        what = "not found" if not path.exists() else "not a keras-hub preset directory (no config.json)"
        raise TfmmError(f"{field}: {path} is {what}")
    cls = keras.saving.get_registered_object(_registered_name(path))
    for family, (backbone_cls, *_) in FAMILIES.items():
        if isinstance(cls, type) and issubclass(cls, backbone_cls):
            return family
    raise TfmmError(f"{field}: {path} holds a {_registered_name(path)}; a CLIPBackbone or SigLIPBackbone preset is needed")


def _registered_name(path):
    return json.loads((path / "config.json").read_text()).get("registered_name", "?")


def load_preprocessor(path, field="model.preset"):
    """The preset's tokenizer, image converter (size and normalisation) and text length."""
    family = preset_family(path, field)
    _, tokenizer_cls, default_length, _ = FAMILIES[family]
    path = Path(path).expanduser()
    if not (path / "tokenizer.json").is_file() or not (path / "image_converter.json").is_file():
        raise TfmmError(f"{field}: {path} lacks its tokenizer or image converter (tokenizer.json, image_converter.json)")
    tokenizer = tokenizer_cls.from_preset(str(path))
    converter = keras_hub.layers.ImageConverter.from_preset(str(path))
    length = default_length
    if (path / "preprocessor.json").is_file():
        length = json.loads((path / "preprocessor.json").read_text())["config"].get("sequence_length", length)
    return KerasHubDualEncoderPreprocessor(tokenizer, ImageConverter.like(converter), length, family=family)


def load_dual_encoder_preset(path, field="model.preset", preprocessor=None):
    """The backbone, preprocessor and learnt logit scale/bias of a local keras-hub CLIP/SigLIP preset (with
    `preprocessor`, the one `load_preprocessor` already made for it, rather than reading it again)."""
    preprocessor = preprocessor or load_preprocessor(path, field)
    dual_encoder = keras_hub.models.Backbone.from_preset(str(Path(path).expanduser()))
    text_positions = getattr(dual_encoder.text_encoder, "max_sequence_length", None)
    if text_positions and preprocessor.sequence_length > text_positions:
        raise TfmmError(f"{field}: its preprocessor packs {preprocessor.sequence_length} tokens but the text "
                        f"encoder holds {text_positions}")
    image_side = dual_encoder.vision_encoder.image_shape[0]
    if preprocessor.image_size != image_side:
        raise TfmmError(f"{field}: its image converter makes {preprocessor.image_size}-pixel images but the vision "
                        f"encoder takes {image_side}")
    head = _head(dual_encoder)
    scale = math.exp(float(np.asarray(head.logit_scale)))
    bias = float(np.asarray(head.logit_bias)) if getattr(head, "logit_bias", None) is not None else None
    backbone = KerasHubDualEncoder(dual_encoder, preprocessor.sequence_length, name="keras_hub_dual_encoder")
    return DualEncoderPreset(backbone, preprocessor, scale, bias)


def set_tower_trainable(backbone, tower, mode):
    """`tfmm.encoders.set_trainable` for one tower ("image" / "text") of a `KerasHubDualEncoder`, with the
    projection that follows it: it trains unless the tower is frozen or only LoRA adapters train."""
    from tfmm.encoders import set_trainable

    encoder = backbone.image_encoder if tower == "image" else backbone.text_encoder
    set_trainable(encoder, mode)
    for layer in backbone.projection_layers()[tower]:
        layer.trainable = not (mode == "frozen" or isinstance(mode, tuple) and mode[0] == "lora")
