"""Losses shared by apps: symmetric InfoNCE (CLIP), pairwise sigmoid (SigLIP) and a triplet margin loss over
in-batch negatives. Each takes (image embeddings, text embeddings, scale, margin=, bias=, mixing=) and ignores
what it does not use. `mixing` (local batch × local batch, rows summing to 1) says how much of each text is in
each image after MixUp/CutMix (`tfmm.data.mixing`); InfoNCE and sigmoid then score against those soft targets."""

import dataclasses

import tensorflow as tf

from tfmm.config import positive
from tfmm.registry import Registry

CONTRASTIVE_LOSSES = Registry("contrastive loss")


@dataclasses.dataclass
class InfoNCEOptions:
    name: str = "infonce"


@dataclasses.dataclass
class SigmoidOptions:
    name: str = "sigmoid"


@dataclasses.dataclass
class TripletOptions:
    name: str = "triplet"
    margin: float = positive(0.2)


def _gather_global_batch(image_embedding, text_embedding):
    """Under a multi-replica strategy, all replicas' embeddings (gradients flow back to their owners).

    Returns (all images, all texts, index of this replica's first row). As open_clip
    does with DDP: each replica scores its own rows against the global batch.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return image_embedding, text_embedding, 0
    all_images = context.all_gather(image_embedding, axis=0)
    all_texts = context.all_gather(text_embedding, axis=0)
    offset = tf.cast(context.replica_id_in_sync_group, tf.int32) * tf.shape(image_embedding)[0]
    return all_images, all_texts, offset


def _targets(mixing, offset, total):
    """Soft targets over the global batch: image→text from `mixing`'s rows, text→image from its columns
    (each normalised), both placed at this replica's `offset`."""
    mixing = tf.cast(mixing, tf.float32)
    local = tf.shape(mixing)[0]
    place = [[0, 0], [offset, total - offset - local]]
    by_text = tf.transpose(mixing)
    by_text /= tf.reduce_sum(by_text, axis=-1, keepdims=True)
    return tf.pad(mixing, place), tf.pad(by_text, place)


def _hard_targets(offset, local, total):
    eye = tf.one_hot(offset + tf.range(local), total)
    return eye, eye


@CONTRASTIVE_LOSSES.register("infonce", InfoNCEOptions)
def infonce_loss(image_embedding, text_embedding, scale, margin=None, bias=None, mixing=None):
    """Symmetric cross-entropy over image→text and text→image similarity logits (CLIP)."""
    del margin, bias
    image_embedding = tf.cast(image_embedding, tf.float32)
    text_embedding = tf.cast(text_embedding, tf.float32)
    all_images, all_texts, offset = _gather_global_batch(image_embedding, text_embedding)
    total = tf.shape(all_texts)[0]
    image_targets, text_targets = (_hard_targets(offset, tf.shape(image_embedding)[0], total) if mixing is None
                                   else _targets(mixing, offset, total))
    logits_per_image = scale * tf.matmul(image_embedding, all_texts, transpose_b=True)
    logits_per_text = scale * tf.matmul(text_embedding, all_images, transpose_b=True)
    image_loss = tf.nn.softmax_cross_entropy_with_logits(image_targets, logits_per_image)
    text_loss = tf.nn.softmax_cross_entropy_with_logits(text_targets, logits_per_text)
    return tf.reduce_mean(image_loss + text_loss) / 2.0


@CONTRASTIVE_LOSSES.register("sigmoid", SigmoidOptions)
def sigmoid_loss(image_embedding, text_embedding, scale, margin=None, bias=0.0, mixing=None):
    """SigLIP: every image–text pair is a binary question (match or not) on `scale * cos + bias`; the
    loss is the summed binary cross-entropy over each image's row of the global batch, averaged over
    images (with MixUp/CutMix, a pair's label is the share of the text in the image)."""
    del margin
    image_embedding = tf.cast(image_embedding, tf.float32)
    text_embedding = tf.cast(text_embedding, tf.float32)
    _, all_texts, offset = _gather_global_batch(image_embedding, text_embedding)
    total = tf.shape(all_texts)[0]
    labels = (_hard_targets(offset, tf.shape(image_embedding)[0], total) if mixing is None
              else _targets(mixing, offset, total))[0]
    logits = scale * tf.matmul(image_embedding, all_texts, transpose_b=True) + bias
    return tf.reduce_mean(tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits), axis=-1))


@CONTRASTIVE_LOSSES.register("triplet", TripletOptions)
def triplet_margin_loss(image_embedding, text_embedding, scale=None, margin=0.2, bias=None, mixing=None):
    """Hinge on cosine similarity: each positive pair must beat every in-batch negative by `margin`."""
    if mixing is not None:
        raise ValueError("the triplet loss has no soft targets for MixUp/CutMix")  # the config refuses it first
    del scale, bias
    image_embedding = tf.cast(image_embedding, tf.float32)
    text_embedding = tf.cast(text_embedding, tf.float32)
    all_images, all_texts, offset = _gather_global_batch(image_embedding, text_embedding)
    local = tf.shape(image_embedding)[0]
    labels = offset + tf.range(local)
    positives = tf.reduce_sum(image_embedding * text_embedding, axis=-1, keepdims=True)
    negative_mask = 1.0 - tf.one_hot(labels, tf.shape(all_texts)[0])
    image_to_text = tf.matmul(image_embedding, all_texts, transpose_b=True)
    text_to_image = tf.matmul(text_embedding, all_images, transpose_b=True)
    cost = tf.nn.relu(margin - positives + image_to_text) * negative_mask
    cost += tf.nn.relu(margin - positives + text_to_image) * negative_mask
    return tf.reduce_mean(tf.reduce_sum(cost, axis=-1))
