"""Checks that find bad input before or while a run reads it, and name each bad file or row.

Non-strict runs skip and count what is bad and report it at the end; strict runs stop at the
first one with a `TfmmError` naming it.
"""

import io
import warnings
from pathlib import Path

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
