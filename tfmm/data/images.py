"""Image decoding (in-graph) and the check that finds missing or corrupt image files by name."""

from pathlib import Path

import tensorflow as tf
from PIL import Image

from tfmm.errors import TfmmError


def decode_and_resize(image_bytes, image_size):
    """Encoded JPEG/PNG/GIF/BMP bytes (a scalar) → uint8 (size, size, 3)."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def decode_batch(image_bytes, image_size):
    """A batch of encoded images → float32 (batch, size, size, 3) in 0..1; for SavedModel signatures."""
    images = tf.map_fn(
        lambda b: decode_and_resize(b, image_size), image_bytes,
        fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.uint8),
    )
    return tf.cast(images, tf.float32) / 255.0


def read_image_file(path, image_size):
    """One image file → float32 (size, size, 3) in 0..1; a missing or undecodable file is an error naming it."""
    ImageCheck(strict=True).keep(path)
    return decode_and_resize(tf.io.read_file(str(path)), image_size).numpy().astype("float32") / 255.0


def to_float(images):
    return tf.cast(images, tf.float32) / 255.0


class ImageCheck:
    """Finds unreadable images before a run starts; reports each by file name.

    Non-strict runs skip bad files and `summary()` gives the count at the end;
    strict runs stop at the first bad file with a `TfmmError` naming it.
    """

    def __init__(self, strict=False, log=print):
        self.strict = strict
        self.log = log
        self.skipped = []

    def reason(self, path):
        path = Path(path)
        if not path.is_file():
            return "missing"
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as error:  # PIL raises many types for bad files
            return f"unreadable image ({type(error).__name__}: {error})"
        return None

    def keep(self, path):
        reason = self.reason(path)
        if reason is None:
            return True
        if self.strict:
            raise TfmmError(f"{path}: {reason} (strict mode)")
        if (str(path), reason) not in self.skipped:  # a file seen again for another split is reported once
            self.skipped.append((str(path), reason))
            self.log(f"skipping {path}: {reason}")
        return False

    def summary(self):
        if not self.skipped:
            return None
        return f"skipped {len(self.skipped)} unreadable image(s); use --strict to fail on them instead"
