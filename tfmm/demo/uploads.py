"""What a visitor uploads, checked before any model sees it: a message on the page, never a stack trace."""

from pathlib import Path

from PIL import Image

from tfmm.errors import TfmmError

MAX_UPLOAD_BYTES = 10 << 20
MAX_PIXELS = 25_000_000  # read from the header, before decoding: a decompression bomb never reaches memory
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")


def read_image_upload(path, what="image"):
    """An uploaded file's encoded bytes, after checking size, format and pixel count."""
    if not path:
        raise TfmmError(f"give an {what}: upload one or click an example")
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise TfmmError(f"{path.name} is {size / 2**20:.1f} MB; the demo takes images up to {MAX_UPLOAD_BYTES >> 20} MB")
    try:
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
            if width * height > MAX_PIXELS:
                raise TfmmError(f"{path.name} is {width}×{height} pixels; the demo takes up to {MAX_PIXELS:,} pixels")
            image.verify()
    except TfmmError:
        raise
    except Exception:  # PIL raises many types for files that are not images
        raise TfmmError(f"{path.name} is not an image the demo can read (PNG, JPEG, GIF, BMP or WebP)") from None
    if fmt not in FORMATS:
        raise TfmmError(f"{path.name} is a {fmt} image; the demo takes {', '.join(FORMATS)}")
    return path.read_bytes()


def check_text(text, what):
    text = (text or "").strip()
    if not text:
        raise TfmmError(f"give a {what}")
    if len(text) > 500:
        raise TfmmError(f"the {what} is {len(text)} characters; the demo takes up to 500")
    return text
