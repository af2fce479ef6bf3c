"""The classifier's MixUp/CutMix loss against NumPy: λ·CE(own label) + (1−λ)·CE(partner's label), unknown
labels left out of both terms; a mixed batch trains under `fit`. Retrieval's soft image–text targets too."""

import numpy as np
import pytest
import tensorflow as tf

from tfmm.data.mixing import MIX_PARTNER, MIX_WEIGHT
from tfmm.testing import tiny_tasks
from tfmm.testing.tiny_tasks import IMAGE_SIZE


def _cross_entropy(logits, labels):
    logits = logits - logits.max(-1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -log_probabilities[np.arange(len(labels)), labels]


def test_mixed_loss_matches_numpy():
    task = tiny_tasks.classifier("concat", {"main": ["a", "b", "c"]})
    images = np.random.default_rng(0).integers(0, 256, (4, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    raw_y = {"main": tf.constant(["a", "b", "zzz", "c"]), MIX_PARTNER: {"main": tf.constant(["c", "a", "b", "zzz"])},
             MIX_WEIGHT: tf.constant([0.7, 0.7, 0.7, 0.7])}
    x, y, weights = task.preprocessor({"images": images, "text": tf.constant(["a b"] * 4)}, raw_y)
    logits = task(x, training=False)["main"].numpy()
    loss = float(task.compute_loss(x, y, task(x, training=False), weights))
    own = np.array([0, 1, -1, 2])
    partner = np.array([2, 0, 1, -1])
    w_own = 0.7 * (own >= 0)
    w_partner = 0.3 * (partner >= 0)
    expected = (np.sum(w_own * _cross_entropy(logits, np.maximum(own, 0)))
                + np.sum(w_partner * _cross_entropy(logits, np.maximum(partner, 0)))) / (w_own.sum() + w_partner.sum())
    assert abs(loss - expected) < 1e-5, (loss, expected)
    plain_x, plain_y, plain_w = task.preprocessor({"images": images, "text": tf.constant(["a b"] * 4)},
                                                  {"main": raw_y["main"]})
    plain = float(task.compute_loss(plain_x, plain_y, task(plain_x, training=False), plain_w))
    known = own >= 0
    assert abs(plain - _cross_entropy(logits, np.maximum(own, 0))[known].mean()) < 1e-5  # unmixed: as before


def test_classify_pipeline_mixes_training_batches_and_fit_trains_on_them():
    import argparse

    from tfmm.apps.classify import Classify
    from tfmm.apps.runner import Runner

    config = Runner(Classify()).resolve_config(argparse.Namespace(
        set=["data.augment.mixup=10", "data.batch_size=4", "data.modality_dropout=0"],  # λ near 0.5
        config=None))
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (8, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    labels = ["a", "b", "c", "a", "b", "c", "a", "b"]
    examples = tf.data.Dataset.from_tensor_slices({"image": images, "text": ["a b"] * 8, "labels": {"main": labels}})
    x, y = next(iter(Classify().pipeline(config, examples, training=True)))
    assert set(y) == {"main", MIX_PARTNER, MIX_WEIGHT} and y[MIX_WEIGHT].shape == (4,)
    assert not any(np.array_equal(i, j) for i in x["images"].numpy() for j in images)  # each mixed with another
    x, y = next(iter(Classify().pipeline(config, examples, training=False)))
    assert set(y) == {"main"}  # evaluation batches are never mixed
    task = tiny_tasks.classifier("concat", {"main": ["a", "b", "c"]})
    task.compile(optimizer="adam")
    stream = Classify().pipeline(config, examples, training=True, repeat=True)
    history = task.fit(stream, steps_per_epoch=2, epochs=2, verbose=0, shuffle=False).history
    assert np.isfinite(history["loss"]).all()


def test_retrieval_pipeline_mixes_images_and_the_loss_scores_the_soft_pairs():
    import argparse

    from tfmm.apps.retrieval import Retrieval
    from tfmm.apps.runner import Runner
    from tfmm.losses import infonce_loss

    config = Runner(Retrieval()).resolve_config(argparse.Namespace(
        set=["data.augment.cutmix=1.0", "data.batch_size=4"], config=None))
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (8, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    examples = tf.data.Dataset.from_tensor_slices({"image": images, "captions": [["a red circle"]] * 8})
    x, y = next(iter(Retrieval().pipeline(config, examples, training=True)))
    assert set(y) == {MIX_PARTNER, MIX_WEIGHT}
    partner, weight = y[MIX_PARTNER].numpy(), y[MIX_WEIGHT].numpy()
    assert sorted(partner) == [0, 1, 2, 3] and all(partner != np.arange(4))
    assert not isinstance(next(iter(Retrieval().pipeline(config, examples, training=False))), tuple)  # never mixed
    task = tiny_tasks.retriever()
    px, py = task.preprocessor(x, y)
    out = task(px)
    mixing = weight[:, None] * np.eye(4) + (1 - weight[:, None]) * np.eye(4)[partner]
    expected = infonce_loss(out["image_embedding"], out["text_embedding"], task.head.scale(), mixing=mixing)
    assert float(task.compute_loss(px, py, out)) == pytest.approx(float(expected), rel=1e-6)
    task.compile(optimizer="adam")
    history = task.fit(Retrieval().pipeline(config, examples, training=True, repeat=True), steps_per_epoch=2, epochs=1,
                       verbose=0, shuffle=False).history
    assert np.isfinite(history["loss"]).all()


def test_retrieval_refuses_mixing_with_the_triplet_loss():
    import argparse

    from tfmm.apps.retrieval import Retrieval
    from tfmm.apps.runner import Runner
    from tfmm.errors import TfmmError

    with pytest.raises(TfmmError, match="the triplet loss has no soft targets"):
        Runner(Retrieval()).resolve_config(argparse.Namespace(
            set=["data.augment.mixup=0.4", "model.loss.name=triplet"], config=None))
