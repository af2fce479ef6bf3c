"""Checks that find bad input before or while a run reads it, and name each bad file or row.

Non-strict runs skip and count what is bad and report it at the end; strict runs stop at the
first one with a `TfmmError` naming it.
"""

import io
import warnings
from pathlib import Path

import tensorflow as tf
from PIL import Image

from tfmm.errors import TfmmError

IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")  # PNG, JPEG, GIF, BMP, WebP


def declared_pixels(data):
    """width × height an encoded image declares in its header, or None for bytes that are not an image."""
    if not isinstance(data, bytes) or not data.startswith(IMAGE_MAGIC):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                width, height = image.size
    except Image.DecompressionBombError:
        return float("inf")
    except Exception:  # not decodable: the model's own decoder reports it
        return None
    return width * height


def image_problem(data):
    """Why TensorFlow's decoder (the one every pipeline uses) cannot read encoded image bytes, or None."""
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
        message = error.message.strip().splitlines()[0] if error.message.strip() else type(error).__name__
        return f"unreadable image (TensorFlow cannot decode it: {message[:160]})"
    return None


class ImageCheck:
    """Finds images (files, or image bytes in TFRecord shards) that the pipeline could not decode, and
    corrupt records, before a run starts; reports each by name.

    Images are decoded once with TensorFlow's decoder, so nothing the check passes can stop a run
    midway. Non-strict runs skip what is bad and `summary()` gives the count at the end;
    strict runs stop at the first one with a `TfmmError` naming it.
    """

    def __init__(self, strict=False, log=print):
        self.strict = strict
        self.log = log
        self.skipped = []
        self.seen = {}  # path -> reason (None: fine): a file read again for another split is decoded once
        self.scans = {}  # TFRecord pattern -> [[record readable?] per shard], scanned once

    def reason(self, path):
        key = str(path)
        if key not in self.seen:
            path = Path(path)
            self.seen[key] = image_problem(path.read_bytes()) if path.is_file() else "missing"
        return self.seen[key]

    def keep(self, path):
        reason = self.reason(path)
        return reason is None or self.reject(path, reason)

    def reject(self, where, reason):
        """Stops (strict) or names and counts `where` (a file, or a record of a shard); returns False."""
        if self.strict:
            raise TfmmError(f"{where}: {reason} (strict mode)")
        if (str(where), reason) not in self.skipped:  # seen again for another split: reported once
            self.skipped.append((str(where), reason))
            self.log(f"skipping {where}: {reason}")
        return False

    def summary(self):
        if not self.skipped:
            return None
        return f"skipped {len(self.skipped)} unreadable image(s) or record(s); use --strict to fail on them instead"


class RowCheck:
    """Skips and counts bad rows, naming each, or stops at the first one when strict."""

    def __init__(self, strict=False, log=print):
        self.strict, self.log, self.skipped = strict, log, []

    def reject(self, where, reason):
        if self.strict:
            raise TfmmError(f"{where}: {reason} (strict mode)")
        if (where, reason) in self.skipped:  # a table read again for another split
            return
        self.skipped.append((where, reason))
        self.log(f"skipping {where}: {reason}")

    def summary(self):
        if not self.skipped:
            return None
        return f"skipped {len(self.skipped)} bad row(s); use --strict to fail on them instead"


class DataChecks:
    """The checks one run shares across its splits: images and table rows."""

    def __init__(self, strict=False, log=print):
        self.images = ImageCheck(strict, log)
        self.rows = RowCheck(strict, log)

    def summary(self):
        return "; ".join(s for s in (self.images.summary(), self.rows.summary()) if s) or None
