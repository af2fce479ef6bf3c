"""The fusion library: ways to combine image and text features, shared by the VQA and classify apps.

One module (rather than one file per class) so the strategies sit side by side and read as
a family. Every fusion is a serialisable Keras layer called on one dict of features:

    image_sequence (batch, regions, image_dim)   image_pooled (batch, image_dim)
    text_sequence  (batch, tokens, text_dim)     text_pooled  (batch, text_dim)
    text_mask      (batch, tokens)  1 for real tokens

and returns a dict with `fused` (batch, hidden_dim) and, where the strategy has them, the
weights it used: `attention` (text tokens over image regions, (batch, heads, tokens, regions)),
`gate` (gated), `modality_weights` (late). Each layer uses the features it needs and ignores
the rest. `late` is the one strategy whose output is already logits (`returns_logits`): its
unimodal heads must each predict the answer, so it takes `num_outputs` and the app puts no
classifier after it.

Build one from its config options with `build_fusion(options)`; `FUSIONS.names()` lists them.
"""

import dataclasses

import keras
from keras import ops

from tfmm.config import between, positive
from tfmm.errors import TfmmError
from tfmm.registry import Registry

FUSIONS = Registry("fusion")


def _masked_mean(sequence, mask):
    weights = ops.cast(mask, sequence.dtype)[:, :, None]
    return ops.sum(sequence * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


class Fusion(keras.layers.Layer):
    """Base class: holds the shared arguments and their config."""

    returns_logits = False
    # Which image inputs `call` reads: weights that only feed the other one are frozen upstream (no gradient).
    uses_image_pooled, uses_image_sequence = True, False

    def __init__(self, hidden_dim=256, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.dropout = dropout

    def _dense(self, units, activation=None, name=None):
        return keras.layers.Dense(units, activation=activation, dtype=self.dtype_policy, name=name)

    def _norm(self, name):
        return keras.layers.LayerNormalization(epsilon=1e-5, dtype=self.dtype_policy, name=name)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="tfmm")
class ConcatFusion(Fusion):
    """Early fusion: concatenate the pooled vectors, then Dense + GELU + layer norm."""

    def build(self, input_shape):
        width = input_shape["image_pooled"][-1] + input_shape["text_pooled"][-1]
        self.projection = self._dense(self.hidden_dim, "gelu", "projection")
        self.projection.build((None, width))
        self.norm = self._norm("norm")
        self.norm.build((None, self.hidden_dim))
        self.drop = keras.layers.Dropout(self.dropout)

    def call(self, inputs, training=None):
        joint = ops.concatenate([inputs["image_pooled"], inputs["text_pooled"]], axis=-1)
        return {"fused": self.norm(self.drop(self.projection(joint), training=training))}


@keras.saving.register_keras_serializable(package="tfmm")
class LateFusion(Fusion):
    """Late fusion: an MLP head per modality predicts `num_outputs` logits; the two sets of
    logits are combined with learned weights (a softmax over two learned scalars)."""

    returns_logits = True

    def __init__(self, num_outputs, hidden_dim=256, dropout=0.0, **kwargs):
        super().__init__(hidden_dim, dropout, **kwargs)
        self.num_outputs = num_outputs

    def build(self, input_shape):
        self.heads = {}
        for modality in ("image", "text"):
            hidden = self._dense(self.hidden_dim, "gelu", f"{modality}_hidden")
            hidden.build(input_shape[f"{modality}_pooled"])
            logits = self._dense(self.num_outputs, None, f"{modality}_logits")
            logits.build((None, self.hidden_dim))
            self.heads[modality] = (hidden, logits)
        self.modality_logits = self.add_weight(name="modality_logits", shape=(2,), initializer="zeros")
        self.drop = keras.layers.Dropout(self.dropout)

    def call(self, inputs, training=None):
        logits = []
        for modality, (hidden, head) in self.heads.items():
            logits.append(head(self.drop(hidden(inputs[f"{modality}_pooled"]), training=training)))
        weights = ops.softmax(ops.cast(self.modality_logits, self.compute_dtype))
        fused = weights[0] * logits[0] + weights[1] * logits[1]
        batch_weights = ops.zeros_like(fused[:, :1]) + weights[None, :]
        return {"fused": fused, "modality_weights": batch_weights}

    def get_config(self):
        return {**super().get_config(), "num_outputs": self.num_outputs}


@keras.saving.register_keras_serializable(package="tfmm")
class GatedFusion(Fusion):
    """Gated multimodal unit (Arevalo et al., 2017): z·tanh(W_v v) + (1 − z)·tanh(W_t t), with the
    gate z = σ(W_z [v; t]) chosen per example and per feature."""

    def build(self, input_shape):
        image_dim, text_dim = input_shape["image_pooled"][-1], input_shape["text_pooled"][-1]
        self.image_projection = self._dense(self.hidden_dim, "tanh", "image_projection")
        self.image_projection.build((None, image_dim))
        self.text_projection = self._dense(self.hidden_dim, "tanh", "text_projection")
        self.text_projection.build((None, text_dim))
        self.gate_projection = self._dense(self.hidden_dim, "sigmoid", "gate")
        self.gate_projection.build((None, image_dim + text_dim))
        self.drop = keras.layers.Dropout(self.dropout)

    def call(self, inputs, training=None):
        image, text = inputs["image_pooled"], inputs["text_pooled"]
        gate = self.gate_projection(ops.concatenate([image, text], axis=-1))
        fused = gate * self.image_projection(image) + (1.0 - gate) * self.text_projection(text)
        return {"fused": self.drop(fused, training=training), "gate": gate}


@keras.saving.register_keras_serializable(package="tfmm")
class BilinearFusion(Fusion):
    """Low-rank bilinear pooling (MFB, Yu et al., 2017): project both vectors to
    `hidden_dim × rank`, multiply element-wise, sum-pool each group of `rank`, then signed
    square root. A layer norm replaces MFB's L2 normalisation: it gives the classifier
    inputs of unit scale, which trains faster here than unit-norm vectors."""

    def __init__(self, hidden_dim=256, rank=4, dropout=0.0, **kwargs):
        super().__init__(hidden_dim, dropout, **kwargs)
        self.rank = rank

    def build(self, input_shape):
        self.image_projection = self._dense(self.hidden_dim * self.rank, None, "image_projection")
        self.image_projection.build(input_shape["image_pooled"])
        self.text_projection = self._dense(self.hidden_dim * self.rank, None, "text_projection")
        self.text_projection.build(input_shape["text_pooled"])
        self.norm = self._norm("norm")
        self.norm.build((None, self.hidden_dim))
        self.drop = keras.layers.Dropout(self.dropout)

    def call(self, inputs, training=None):
        joint = self.image_projection(inputs["image_pooled"]) * self.text_projection(inputs["text_pooled"])
        joint = self.drop(joint, training=training)
        pooled = ops.sum(ops.reshape(joint, (-1, self.hidden_dim, self.rank)), axis=-1)
        pooled = ops.sign(pooled) * ops.sqrt(ops.abs(pooled) + 1e-6)  # eps: finite gradient at 0
        return {"fused": self.norm(pooled)}

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}


class _AttentionFusion(Fusion):
    """Shared parts of the attention fusions: both sequences projected to `hidden_dim`, a
    learned position embedding on the image regions (CNN regions carry no position of
    their own), and the final pooling of both sides into the fused vector."""

    uses_image_pooled, uses_image_sequence = False, True

    def __init__(self, hidden_dim=256, num_heads=4, dropout=0.0, **kwargs):
        super().__init__(hidden_dim, dropout, **kwargs)
        self.num_heads = num_heads

    def _attention(self, name):
        return keras.layers.MultiHeadAttention(
            self.num_heads, self.hidden_dim // self.num_heads, dropout=self.dropout, dtype=self.dtype_policy, name=name
        )

    def _feed_forward(self, name):
        return keras.Sequential([
            keras.layers.Dense(2 * self.hidden_dim, activation="gelu", dtype=self.dtype_policy),
            keras.layers.Dense(self.hidden_dim, dtype=self.dtype_policy),
        ], name=name)

    def _build_inputs(self, input_shape):
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be divisible by num_heads {self.num_heads}")
        regions = input_shape["image_sequence"][1]
        self.image_projection = self._dense(self.hidden_dim, None, "image_projection")
        self.image_projection.build(input_shape["image_sequence"])
        self.text_projection = self._dense(self.hidden_dim, None, "text_projection")
        self.text_projection.build(input_shape["text_sequence"])
        self.region_position = self.add_weight(
            name="region_position", shape=(regions, self.hidden_dim), initializer=keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.output_projection = self._dense(self.hidden_dim, "gelu", "output_projection")
        self.output_projection.build((None, 2 * self.hidden_dim))
        self.output_norm = self._norm("output_norm")
        self.output_norm.build((None, self.hidden_dim))

    def _project(self, inputs):
        image = self.image_projection(inputs["image_sequence"]) + ops.cast(self.region_position, self.compute_dtype)
        return image, self.text_projection(inputs["text_sequence"])

    def _pool(self, image, text, text_mask):
        joint = ops.concatenate([ops.mean(image, axis=1), _masked_mean(text, text_mask)], axis=-1)
        return self.output_norm(self.output_projection(joint))

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package="tfmm")
class CrossAttentionFusion(_AttentionFusion):
    """Question tokens attend over the image regions (multi-head); each token adds what it
    found to itself (residual, layer norm, feed-forward), then both sides are pooled."""

    def build(self, input_shape):
        self._build_inputs(input_shape)
        tokens = (None, input_shape["text_sequence"][1], self.hidden_dim)
        regions = (None, input_shape["image_sequence"][1], self.hidden_dim)
        self.attention = self._attention("attention")
        self.attention.build(tokens, regions, regions)
        self.attention_norm, self.feed_forward_norm = self._norm("attention_norm"), self._norm("feed_forward_norm")
        self.attention_norm.build(tokens)
        self.feed_forward_norm.build(tokens)
        self.feed_forward = self._feed_forward("feed_forward")
        self.feed_forward.build(tokens)

    def call(self, inputs, training=None):
        image, text = self._project(inputs)
        attended, scores = self.attention(text, image, image, return_attention_scores=True, training=training)
        text = self.attention_norm(text + attended)
        text = self.feed_forward_norm(text + self.feed_forward(text, training=training))
        return {"fused": self._pool(image, text, inputs["text_mask"]), "attention": scores}


@keras.saving.register_keras_serializable(package="tfmm")
class CoAttentionFusion(_AttentionFusion):
    """Stacked bidirectional cross-modal blocks (ViLBERT-style co-attention): in each block
    the image regions attend the text and the text tokens attend the image, both reading the
    previous block's states, each followed by a feed-forward layer, with residuals and layer
    norms. `attention` is the text-over-image attention of the last block;
    `image_attention` the image-over-text one."""

    def __init__(self, hidden_dim=256, num_heads=4, num_layers=2, dropout=0.0, **kwargs):
        super().__init__(hidden_dim, num_heads, dropout, **kwargs)
        self.num_layers = num_layers

    def build(self, input_shape):
        self._build_inputs(input_shape)
        tokens = (None, input_shape["text_sequence"][1], self.hidden_dim)
        regions = (None, input_shape["image_sequence"][1], self.hidden_dim)
        self.blocks = []
        for index in range(self.num_layers):
            block = {}
            for side, own, other in (("image", regions, tokens), ("text", tokens, regions)):
                block[f"{side}_attention"] = self._attention(f"block{index}_{side}_attention")
                block[f"{side}_attention"].build(own, other, other)
                block[f"{side}_feed_forward"] = self._feed_forward(f"block{index}_{side}_feed_forward")
                block[f"{side}_feed_forward"].build(own)
                for part in ("attention_norm", "feed_forward_norm"):
                    block[f"{side}_{part}"] = self._norm(f"block{index}_{side}_{part}")
                    block[f"{side}_{part}"].build(own)
            self.blocks.append(block)

    def call(self, inputs, training=None):
        image, text = self._project(inputs)
        text_mask = ops.cast(inputs["text_mask"], "bool")
        # Regions may attend real tokens only: (batch, regions, tokens).
        image_to_text_mask = ops.logical_and(ops.ones_like(image[:, :, :1], dtype="bool"), text_mask[:, None, :])
        for block in self.blocks:
            from_text, image_scores = block["image_attention"](
                image, text, text, attention_mask=image_to_text_mask, return_attention_scores=True, training=training
            )
            from_image, text_scores = block["text_attention"](text, image, image, return_attention_scores=True, training=training)
            image = block["image_attention_norm"](image + from_text)
            text = block["text_attention_norm"](text + from_image)
            image = block["image_feed_forward_norm"](image + block["image_feed_forward"](image, training=training))
            text = block["text_feed_forward_norm"](text + block["text_feed_forward"](text, training=training))
        return {"fused": self._pool(image, text, inputs["text_mask"]), "attention": text_scores,
                "image_attention": image_scores}

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers}


@dataclasses.dataclass
class FusionOptions:
    """What every fusion takes: its width and dropout."""

    name: str = ""
    hidden_dim: int = positive(256)
    dropout: float = between(0, 1, 0.1)


@dataclasses.dataclass
class ConcatOptions(FusionOptions):
    name: str = "concat"


@dataclasses.dataclass
class LateOptions(FusionOptions):
    name: str = "late"


@dataclasses.dataclass
class GatedOptions(FusionOptions):
    name: str = "gated"


@dataclasses.dataclass
class BilinearOptions(FusionOptions):
    name: str = "bilinear"
    rank: int = positive(4)


@dataclasses.dataclass
class CrossAttentionOptions(FusionOptions):
    name: str = "cross_attention"
    num_heads: int = positive(4)

    def validate(self, root):
        if self.hidden_dim % self.num_heads:
            raise TfmmError(f"model.fusion.hidden_dim {self.hidden_dim} is not divisible by "
                            f"model.fusion.num_heads {self.num_heads}")


@dataclasses.dataclass
class CoAttentionOptions(CrossAttentionOptions):
    name: str = "co_attention"
    num_layers: int = positive(1)


@FUSIONS.register("concat", ConcatOptions)
def _concat(options, num_outputs, dtype):
    return ConcatFusion(options.hidden_dim, options.dropout, dtype=dtype, name="fusion")


@FUSIONS.register("late", LateOptions)
def _late(options, num_outputs, dtype):
    return LateFusion(num_outputs, options.hidden_dim, options.dropout, dtype=dtype, name="fusion")


@FUSIONS.register("gated", GatedOptions)
def _gated(options, num_outputs, dtype):
    return GatedFusion(options.hidden_dim, options.dropout, dtype=dtype, name="fusion")


@FUSIONS.register("bilinear", BilinearOptions)
def _bilinear(options, num_outputs, dtype):
    return BilinearFusion(options.hidden_dim, options.rank, options.dropout, dtype=dtype, name="fusion")


@FUSIONS.register("cross_attention", CrossAttentionOptions)
def _cross_attention(options, num_outputs, dtype):
    return CrossAttentionFusion(options.hidden_dim, options.num_heads, options.dropout, dtype=dtype, name="fusion")


@FUSIONS.register("co_attention", CoAttentionOptions)
def _co_attention(options, num_outputs, dtype):
    return CoAttentionFusion(options.hidden_dim, options.num_heads, options.num_layers, options.dropout, dtype=dtype,
                             name="fusion")


@dataclasses.dataclass
class ImageOnlyOptions(FusionOptions):
    """A single-modality baseline on the same encoders: no fusion, a GELU layer of `hidden_dim` on the
    image's pooled features (the text is read by nothing)."""

    name: str = "image_only"


@dataclasses.dataclass
class TextOnlyOptions(FusionOptions):
    name: str = "text_only"


BASELINES = {"image_only": "image", "text_only": "text"}  # fusion name → the one modality the model reads


def _baseline(options, num_outputs, dtype):
    return None  # `FusionBackbone(modalities=...)` builds the single-modality layer itself


FUSIONS.register("image_only", ImageOnlyOptions)(_baseline)
FUSIONS.register("text_only", TextOnlyOptions)(_baseline)


def fusion_options(name, **values):
    """The options of fusion `name`, e.g. `fusion_options("cross_attention", hidden_dim=16, num_heads=2)`."""
    return FUSIONS.options(name, "model.fusion")(**values)


def build_fusion(options, num_outputs=None, dtype=None):
    """The fusion layer its options name (None for the single-modality baselines `image_only` and
    `text_only`); `num_outputs` (the logits of `late`) is needed by `late` only."""
    return FUSIONS.get(options.name, "model.fusion")(options, num_outputs, dtype)
