import numpy as np
import tensorflow as tf

from tfmm.config import ImageAugmentConfig
from tfmm.data import ImageAugmenter, build_pipeline
from tfmm.text import TextAugmenter


def test_shards_are_disjoint_and_cover_the_data():
    dataset = tf.data.Dataset.range(103)
    seen = []
    for index in range(3):
        shard = build_pipeline(dataset, 10, training=True, shard=(3, index), drop_remainder=False, seed=1)
        seen.extend(np.concatenate(list(shard.as_numpy_iterator())).tolist())
    assert sorted(seen) == list(range(103))


def test_training_batches_are_shuffled_and_full_eval_batches_are_ordered():
    dataset = tf.data.Dataset.range(50)
    train = list(build_pipeline(dataset, 8, training=True, seed=0).as_numpy_iterator())
    assert all(len(b) == 8 for b in train) and len(train) == 6
    assert not np.array_equal(np.concatenate(train), np.arange(48))
    evaluation = np.concatenate(list(build_pipeline(dataset, 8, training=False).as_numpy_iterator()))
    np.testing.assert_array_equal(evaluation, np.arange(50))


def test_image_augmentation_works_on_raw_pixels():
    images = tf.cast(tf.random.uniform((4, 32, 32, 3), seed=1) * 255, tf.uint8)
    augmenter = ImageAugmenter(ImageAugmentConfig(random_crop=0.2, flip=True, rotation=0.1, color_jitter=0.5), seed=1)
    assert augmenter.active and not ImageAugmenter(ImageAugmentConfig()).active
    out = augmenter(images)
    assert out.dtype == tf.uint8 and out.shape == images.shape
    assert np.abs(out.numpy().astype(float) - images.numpy()).mean() > 2
    assert ImageAugmenter(ImageAugmentConfig())(images) is images
    flipped = ImageAugmenter(ImageAugmentConfig(flip=True), seed=3)(images[:1]).numpy()[0]
    assert np.array_equal(flipped, images[0].numpy()) or np.array_equal(flipped, images[0].numpy()[:, ::-1])


def test_text_augmentation():
    text = tf.constant(["a small red circle left of a large blue star"] * 4)
    deleted = TextAugmenter(deletion=0.5, seed=1)(text).numpy()
    assert all(len(t.split()) < 10 for t in deleted)
    swapped = TextAugmenter(swap=0.5, seed=1)(text).numpy()
    assert all(sorted(t.split()) == sorted(text[0].numpy().split()) for t in swapped)
    assert any(t != text[0].numpy() for t in swapped)
    synonyms = TextAugmenter(synonyms=True, synonym_rate=1.0)(text).numpy()[0].decode()
    assert "small" not in synonyms.split() and "large" not in synonyms.split() and "red circle" in synonyms
    assert TextAugmenter()(text) is text
