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


def test_image_augmentation_works_on_raw_pixels_and_repeats_with_its_seed():
    images = tf.cast(tf.random.uniform((4, 32, 32, 3), seed=1) * 255, tf.uint8)
    augmenter = ImageAugmenter(ImageAugmentConfig(random_crop=0.2, flip=True, rotation=0.1, color_jitter=0.5))
    assert augmenter.active and not ImageAugmenter(ImageAugmentConfig()).active
    out = augmenter(images, [1, 2]).numpy()
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert np.abs(out.astype(float) - images.numpy()).mean() > 2
    np.testing.assert_array_equal(augmenter(images, [1, 2]).numpy(), out)  # stateless: same seed, same pixels
    assert not np.array_equal(augmenter(images, [1, 3]).numpy(), out)
    assert ImageAugmenter(ImageAugmentConfig())(images, [1, 2]) is images
    flips = ImageAugmenter(ImageAugmentConfig(flip=True))(images, [3, 4]).numpy()
    mirrored = [np.array_equal(f, i[:, ::-1]) for f, i in zip(flips, images.numpy())]
    assert all(m or np.array_equal(f, i) for m, f, i in zip(mirrored, flips, images.numpy())) and any(mirrored)


def test_half_turn_rotation_is_a_point_reflection():
    image = tf.cast(tf.random.uniform((1, 9, 9, 3), seed=2) * 255, tf.uint8)
    from tfmm.data.augment import _rotate

    turned = _rotate(tf.cast(image[0], tf.float32), tf.constant(np.pi))
    np.testing.assert_allclose(turned.numpy(), image.numpy()[0, ::-1, ::-1].astype(np.float32), atol=1e-3)


def test_text_augmentation_is_seeded_and_keeps_the_words_it_should():
    text = tf.constant(["a small red circle left of a large blue star"] * 8)
    words = text[0].numpy().split()
    deleted = TextAugmenter(deletion=0.5)(text, [1, 2]).numpy()
    assert all(0 < len(t.split()) < 10 for t in deleted) and len(set(deleted)) > 1  # each caption draws its own
    assert all(_is_subsequence(t.split(), words) for t in deleted)
    np.testing.assert_array_equal(TextAugmenter(deletion=0.5)(text, [1, 2]).numpy(), deleted)
    assert TextAugmenter(deletion=1.0)(tf.constant(["one two"]), [0, 1]).numpy().tolist() == [b"one"]  # never empty
    swapped = TextAugmenter(swap=0.5)(text, [1, 2]).numpy()
    for t in swapped:  # a swap trades neighbours: every word moves at most one place
        got = t.split()
        assert sorted(got) == sorted(words) and any(g != w for g, w in zip(got, words)) or got == words
        assert all(got[i] in words[max(0, i - 1):i + 2] for i in range(len(got)))
    assert any(t != text[0].numpy() for t in swapped)
    synonyms = TextAugmenter(synonyms=True, synonym_rate=1.0)(text, [0, 0]).numpy()[0].decode()
    assert "small" not in synonyms.split() and "large" not in synonyms.split() and "red circle" in synonyms
    assert TextAugmenter()(text, [0, 0]) is text
    assert TextAugmenter(swap=0.5)(tf.constant("just one"), [5, 5]).shape == ()  # a scalar stays a scalar


def _is_subsequence(part, whole):
    found = iter(whole)
    return all(word in found for word in part)


def test_augmented_stream_resumed_at_a_step_gives_the_same_batches():
    images = tf.data.Dataset.from_tensor_slices(tf.cast(tf.random.uniform((40, 8, 8, 3), seed=3) * 255, tf.uint8))
    augmenter = ImageAugmenter(ImageAugmentConfig(random_crop=0.3, flip=True, color_jitter=0.5))

    def stream():
        return build_pipeline(images, 8, training=True, seed=5, repeat=True, batch_fn=augmenter)

    whole = [b.numpy() for b in stream().take(12)]
    resumed = [b.numpy() for b in stream().skip(7).take(5)]  # a new process skips to step 7
    for a, b in zip(whole[7:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(whole[0], whole[5])  # epochs reshuffle and re-draw
