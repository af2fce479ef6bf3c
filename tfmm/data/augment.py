"""Image augmentation with Keras 3's own layers (where keras-cv's used to be), run inside tf.data.

Augmentation works on the raw uint8 pixels, before the task's preprocessor: the preprocessor
then converts augmented and plain images alike, in training, in `predict` and in the export.
MixUp / CutMix are not offered: no app trains on soft labels yet.
"""

import keras
import tensorflow as tf


class ImageAugmenter:
    """Random crop (as zoom-in), horizontal flip, rotation and colour jitter on uint8 images (an
    `ImageAugmentConfig`); `seed` makes the draws repeatable."""

    def __init__(self, config, seed=None):
        layers = []
        if config.random_crop:
            layers.append(keras.layers.RandomZoom((-config.random_crop, 0.0), fill_mode="reflect", seed=seed))
        if config.flip:
            layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
        if config.rotation:
            layers.append(keras.layers.RandomRotation(config.rotation, fill_mode="constant", seed=seed))
        if config.color_jitter:
            j = config.color_jitter
            layers.append(keras.layers.RandomColorJitter(
                value_range=(0, 1), brightness_factor=0.3 * j, contrast_factor=0.3 * j,
                saturation_factor=(0.5 - 0.3 * j, 0.5 + 0.3 * j), seed=seed,
            ))
        self.layers = layers

    @property
    def active(self):
        return bool(self.layers)

    def __call__(self, images):
        """uint8 (..., H, W, 3) → uint8 of the same shape."""
        if not self.layers:
            return images
        shape = tf.shape(images)
        x = tf.reshape(tf.cast(images, tf.float32) / 255.0, tf.concat([[-1], shape[-3:]], 0))
        for layer in self.layers:
            x = layer(x, training=True)
        x = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
        return tf.reshape(x, shape)
