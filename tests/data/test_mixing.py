"""MixUp and CutMix against NumPy: the blend or the pasted box, the partner permutation, λ."""

import numpy as np
import pytest
import tensorflow as tf

from tfmm.data.mixing import mix_images


def _images(count=6, size=16):
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_mixup_blends_each_image_with_its_partner_by_lambda():
    images = _images()
    mixed, partner, weight = (t.numpy() for t in mix_images(images, [3, 4], mixup=0.4))
    assert sorted(partner.tolist()) == list(range(6)) and all(partner != np.arange(6))  # a permutation, no one alone
    assert np.all(weight == weight[0]) and 0 < weight[0] < 1
    expected = np.round(images * weight[0] + images[partner] * (1 - weight[0]))
    np.testing.assert_allclose(mixed, expected, atol=1)
    again = [t.numpy() for t in mix_images(images, [3, 4], mixup=0.4)]
    np.testing.assert_array_equal(again[0], mixed)  # stateless: the same seed mixes the same way


def test_cutmix_pastes_a_box_whose_share_is_one_minus_lambda():
    images = _images()
    mixed, partner, weight = (t.numpy() for t in mix_images(images, [7, 8], cutmix=1.0))
    from_partner = np.all(mixed == images[partner], axis=-1) & np.any(images != images[partner], axis=-1)
    own = np.all(mixed == images, axis=-1)
    assert np.all(own | np.all(mixed == images[partner], axis=-1))  # every pixel is one image's or the other's
    rows, cols = np.nonzero(from_partner[0])
    box = np.zeros_like(from_partner[0])
    box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
    assert np.array_equal(from_partner[0], box & from_partner[0])  # a rectangle
    assert box.mean() == pytest.approx(1 - weight[0])
    for i in range(6):  # the same box in every image of the batch
        assert np.all(from_partner[i] <= box)


def test_both_on_picks_one_per_batch():
    images = _images()
    kinds = set()
    for s in range(12):
        mixed, partner, weight = (t.numpy() for t in mix_images(images, [s, 1], mixup=0.4, cutmix=1.0))
        kinds.add("cutmix" if np.all((mixed == images) | (mixed == images[partner])) else "mixup")
    assert kinds == {"mixup", "cutmix"}


def test_mixing_needs_a_setting():
    with pytest.raises(ValueError):
        mix_images(tf.zeros((2, 4, 4, 3), tf.uint8), [0, 0])
