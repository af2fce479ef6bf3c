"""Image augmentation with Keras 3's own layers (where keras-cv's used to be), run inside tf.data."""

import keras
import tensorflow as tf


class ImageAugmenter:
    """Random crop (as zoom-in), horizontal flip, rotation and colour jitter on float images in 0..1."""

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
                value_range=(0, 1), brightness_factor=0.3 * j, contrast_factor=0.3 * j, saturation_factor=(0.5 - 0.3 * j, 0.5 + 0.3 * j), seed=seed
            ))
        self.layers = layers

    @property
    def active(self):
        return bool(self.layers)

    def __call__(self, images):
        for layer in self.layers:
            images = layer(images, training=True)
        return tf.clip_by_value(images, 0.0, 1.0)


class BatchMixer:
    """MixUp and/or CutMix on a batch of images with one-hot labels (classification apps).

    When both are on, each batch gets one of the two, chosen at random.
    """

    def __init__(self, config, seed=None):
        self.mixup = keras.layers.MixUp(alpha=config.mixup, seed=seed) if config.mixup else None
        self.cutmix = keras.layers.CutMix(factor=config.cutmix, seed=seed) if config.cutmix else None

    @property
    def active(self):
        return bool(self.mixup or self.cutmix)

    def __call__(self, images, labels):
        layers = [layer for layer in (self.mixup, self.cutmix) if layer is not None]
        if not layers:
            return images, labels

        def apply(layer):
            out = layer({"images": images, "labels": labels}, training=True)
            return out["images"], tf.cast(out["labels"], labels.dtype)

        if len(layers) == 1:
            return apply(layers[0])
        return tf.cond(tf.random.uniform(()) < 0.5, lambda: apply(layers[0]), lambda: apply(layers[1]))
