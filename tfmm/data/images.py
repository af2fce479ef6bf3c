"""Image decoding and resizing (in-graph): the one place every path to a model input goes through."""

from pathlib import Path

import tensorflow as tf

from tfmm.data.checks import ImageCheck


def resize_pixels(images, image_size):
    """uint8 pixels (..., H, W, 3) → uint8 (..., size, size, 3): antialiased bilinear resize, rounded.

    The one resize of the suite: data sources, `ImageConverter` (predict, exports) and the
    augmentations all go through it, so an image gives the same pixels whichever way it arrives.
    """
    resized = tf.image.resize(images, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def decode_and_resize(image_bytes, image_size):
    """Encoded JPEG/PNG/GIF/BMP bytes (a scalar) → uint8 (size, size, 3)."""
    return resize_pixels(tf.io.decode_image(image_bytes, channels=3, expand_animations=False), image_size)


def read_image_files(paths):
    """Image files → their encoded bytes, in order; a missing or unreadable file is an error naming it."""
    check = ImageCheck(strict=True)
    for path in paths:
        check.keep(path)
    return [Path(path).read_bytes() for path in paths]
