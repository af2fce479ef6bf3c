"""Image augmentation on raw uint8 pixels inside tf.data, stateless: every draw comes from a seed.

Augmentation works before the task's preprocessor, which then converts augmented and plain images
alike, in training, in `predict` and in the export. The draws are TensorFlow's stateless image ops
keyed by the batch's seed (`build_pipeline` derives it from the batch's position in the stream), not
Keras' random layers, whose generator state is not part of a backup: so a killed and resumed run
augments its remaining batches exactly as an uninterrupted run does.

MixUp / CutMix are not here: no task trains on mixed targets yet, and `ImageAugmentConfig` has no
setting for them.
"""

import math

import tensorflow as tf


def example_seeds(seed, count):
    """(count, 2) int64 seeds for the examples of a batch, from the batch's shape-[2] `seed`."""
    return tf.random.stateless_uniform([count, 2], seed, minval=None, maxval=None, dtype=tf.int64)


def _rotate(image, angle):
    height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    cx, cy, cos, sin = (width - 1) / 2, (height - 1) / 2, tf.cos(angle), tf.sin(angle)
    # output pixel (x, y) reads input ((a0 x + a1 y + a2), (b0 x + b1 y + b2)): a turn about the centre
    transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")[0]


class ImageAugmenter:
    """Random crop (as zoom-in), horizontal flip, rotation and colour jitter on uint8 images (an
    `ImageAugmentConfig`). `augmenter(images, seed)`: the same images and seed give the same result."""

    def __init__(self, config):
        self.config = config

    @property
    def active(self):
        c = self.config
        return bool(c.random_crop or c.flip or c.rotation or c.color_jitter)

    def __call__(self, images, seed):
        """uint8 (N, H, W, 3) and a shape-[2] seed → uint8 (N, H, W, 3)."""
        if not self.active:
            return images
        images = tf.convert_to_tensor(images)
        seeds = example_seeds(seed, tf.shape(images)[0])
        return tf.map_fn(lambda pair: self.one(pair[0], pair[1]), (images, seeds),
                         fn_output_signature=tf.TensorSpec(images.shape[1:], tf.uint8))

    def one(self, image, seed):
        c = self.config
        draw = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(6)]
        x = tf.cast(image, tf.float32) / 255.0
        size = tf.shape(image)[:2]
        if c.random_crop:
            side = 1.0 - c.random_crop * tf.random.stateless_uniform([], draw[0])
            corner = tf.random.stateless_uniform([2], draw[1]) * (1.0 - side)
            box = tf.concat([corner, corner + side], 0)[None]
            x = tf.image.crop_and_resize(x[None], box, [0], size, method="bilinear")[0]
        if c.flip:
            x = tf.image.stateless_random_flip_left_right(x, draw[2])
        if c.rotation:
            x = _rotate(x, (2.0 * tf.random.stateless_uniform([], draw[3]) - 1.0) * c.rotation * 2.0 * math.pi)
        if c.color_jitter:
            j = c.color_jitter
            x = tf.image.stateless_random_brightness(x, 0.3 * j, draw[4])
            x = tf.image.stateless_random_contrast(x, 1.0 - 0.3 * j, 1.0 + 0.3 * j, draw[5])
            x = tf.image.stateless_random_saturation(x, 1.0 - 0.6 * j, 1.0 + 0.6 * j,
                                                     tf.random.experimental.stateless_fold_in(seed, 7))
        return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
