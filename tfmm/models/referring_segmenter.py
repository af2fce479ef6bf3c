import math

import keras
import tensorflow as tf
from keras import ops

from tfmm.models.referring_segmenter_backbone import ReferringSegmenterBackbone
from tfmm.models.referring_segmenter_preprocessor import ReferringSegmenterPreprocessor
from tfmm.models.task import Task, check_images


def dice_loss(logits, targets, smooth=1.0):
    """1 − soft Dice per example, (B,): (2·Σ p·t + s) / (Σ p + Σ t + s) on sigmoid probabilities. For an
    expression that names nothing (Σ t = 0) it is Σ p / (Σ p + s): every marked pixel costs."""
    probabilities = ops.sigmoid(ops.cast(logits, "float32"))
    targets = ops.cast(targets, "float32")
    overlap = ops.sum(probabilities * targets, axis=(1, 2))
    total = ops.sum(probabilities, axis=(1, 2)) + ops.sum(targets, axis=(1, 2))
    return 1.0 - (2.0 * overlap + smooth) / (total + smooth)


def class_map_loss(class_logits, class_map):
    """Sparse cross-entropy of per-position classes (B, s, s, n) against the class under each pixel (B, S, S) int
    (the shape or the colour there), sampled at the logits' positions (nearest), averaged per example, (B,)."""
    size = ops.shape(class_logits)[1:3]
    labels = ops.image.resize(ops.cast(class_map, "float32")[..., None], size, interpolation="nearest")[..., 0]
    entropy = ops.sparse_categorical_crossentropy(ops.cast(labels, "int32"), ops.cast(class_logits, "float32"),
                                                  from_logits=True)
    return ops.mean(entropy, axis=(1, 2))


def presence_loss(logits, targets, threshold=0.5):
    """Binary cross-entropy of the most confident pixel against "the expression names something", (B,), the logit
    taken relative to the threshold's. The mask is empty exactly when that pixel is not above the threshold, so
    this trains the decision the no-target metric scores. Per-pixel
    losses cannot: a wrongly marked object of 100 pixels is 2 % of a 64×64 cross-entropy and saturates the Dice
    term of an empty target (Σp / (Σp + 1) ≈ 1), so a model trained on them alone marks its best guess whenever
    the words name nothing."""
    logits = ops.cast(logits, "float32")
    most = ops.max(ops.reshape(logits, (ops.shape(logits)[0], -1)), axis=1) - math.log(threshold / (1 - threshold))
    named = ops.cast(ops.any(ops.reshape(targets, (ops.shape(targets)[0], -1)) > 0, axis=1), "float32")
    return ops.binary_crossentropy(named, most, from_logits=True)


@keras.saving.register_keras_serializable(package="tfmm")
class ReferringSegmenter(Task):
    """Referring segmentation: the pixels a sentence names ("the red circle", "all green objects"), or none.

    Trained with `fit` on `({"images", "text"}, masks)`; the loss is per-pixel binary cross-entropy plus
    `dice_weight` × the soft Dice loss plus `presence_weight` × `presence_loss` (is anything named at all). With
    `y = {"mask", "shape_map", "colour_map"}` and a backbone with `shape_classes` / `colour_classes`, also
    `shape_weight` / `colour_weight` × `class_map_loss` of each (a map the weight is 0 for may be left out). With raw
    inputs: `segment(images, texts)` → uint8 masks (N, S, S) at the model's resolution, and `segment_details` adds
    per-pixel probabilities and a score per mask.
    """

    backbone_cls = ReferringSegmenterBackbone
    preprocessor_cls = ReferringSegmenterPreprocessor

    def __init__(self, backbone, preprocessor=None, dice_weight=1.0, presence_weight=0.0, threshold=0.5,
                 shape_weight=0.0, colour_weight=0.0, **kwargs):
        self.backbone, self.preprocessor = backbone, preprocessor
        inputs = backbone.input
        super().__init__(inputs=inputs, outputs=backbone(inputs), **kwargs)
        self.dice_weight, self.presence_weight, self.threshold = dice_weight, presence_weight, threshold
        self.shape_weight, self.colour_weight = shape_weight, colour_weight
        for attribute, weight in (("shape", shape_weight), ("colour", colour_weight)):
            if weight and not getattr(backbone, f"{attribute}_classes"):
                raise ValueError(f"{attribute}_weight {weight} needs a backbone with {attribute}_classes")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        maps = {}
        if isinstance(y, dict):
            maps, y = y, y["mask"]
        logits = ops.cast(y_pred["logits"], "float32")
        targets = ops.cast(y, "float32")
        pixels = ops.mean(ops.binary_crossentropy(targets, logits, from_logits=True), axis=(1, 2))
        per_example = (pixels + self.dice_weight * dice_loss(logits, targets)
                       + self.presence_weight * presence_loss(logits, targets, self.threshold))
        for attribute, weight in (("shape", self.shape_weight), ("colour", self.colour_weight)):
            if weight and f"{attribute}_map" in maps:
                per_example += weight * class_map_loss(y_pred[f"{attribute}_logits"], maps[f"{attribute}_map"])
        loss = ops.mean(per_example)
        return loss + sum(self.losses) if self.losses else loss

    def segment_details(self, images, texts, batch_size=64):
        """{"masks" uint8 (N, S, S) 0/1, "probabilities" float (N, S, S), "score" (N,): the mean probability
        over the marked pixels, 0 for an empty mask}."""
        texts = self.preprocessor.check_texts(texts)
        images = check_images(images, len(texts))

        return self.run_in_batches(self.graph_function("segment", self.segment_tensors), {"images": images, "texts": texts},
                                   batch_size)

    def segment_tensors(self, images, texts):
        """Raw image tensor (bytes or uint8 pixels) and strings → `masks` uint8, `probabilities`, `score` in graph ops:
        what `segment_details` and the export's `segment` signature both run."""
        inputs = {"images": self.preprocessor.convert_images(images), **self.preprocessor.tokenize(texts)}
        probabilities = tf.sigmoid(self.backbone(inputs, training=False)["logits"])
        masks = tf.cast(probabilities > self.threshold, tf.float32)
        score = tf.math.divide_no_nan(tf.reduce_sum(probabilities * masks, axis=(1, 2)), tf.reduce_sum(masks, axis=(1, 2)))
        return {"masks": tf.cast(masks, tf.uint8), "probabilities": probabilities, "score": score}

    def segment(self, images, texts):
        return self.segment_details(images, texts)["masks"]

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "presence_weight": self.presence_weight,
                "threshold": self.threshold, "shape_weight": self.shape_weight, "colour_weight": self.colour_weight}


__all__ = ["ReferringSegmenter", "class_map_loss", "dice_loss", "presence_loss"]
