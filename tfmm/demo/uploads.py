"""What a visitor uploads, checked before any model sees it: a message on the page, never a stack trace."""

import io
from pathlib import Path

from PIL import Image

from tfmm.data.checks import declared_pixels
from tfmm.errors import TfmmError

MAX_UPLOAD_BYTES = 10 << 20
MAX_PIXELS = 25_000_000  # read from the header, before decoding: a decompression bomb never reaches memory


def read_image_upload(path, what="image"):
    """An uploaded file's encoded bytes, after checking size, format and pixel count."""
    if not path:
        raise TfmmError(f"give an {what}: upload one or click an example")
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise TfmmError(f"{path.name} is {size / 2**20:.1f} MB; the demo takes images up to {MAX_UPLOAD_BYTES >> 20} MB")
    data = path.read_bytes()
    pixels = declared_pixels(data)  # from the header, as the model server checks it
    if pixels is None:
        raise TfmmError(f"{path.name} is not an image the demo can read (PNG, JPEG, GIF, BMP or WebP)")
    if pixels > MAX_PIXELS:
        raise TfmmError(f"{path.name} declares more than {MAX_PIXELS:,} pixels, the demo's limit")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # a truncated or corrupt file is refused here, not by the model
    except Exception:  # PIL raises many types for broken files
        raise TfmmError(f"{path.name} is not an image the demo can read (PNG, JPEG, GIF, BMP or WebP)") from None
    return data


def check_text(text, what):
    text = (text or "").strip()
    if not text:
        raise TfmmError(f"give a {what}")
    if len(text) > 500:
        raise TfmmError(f"the {what} is {len(text)} characters; the demo takes up to 500")
    return text
