"""User data for referring segmentation: a folder with `refs.jsonl` (or `train/validation/test.jsonl`), one line
per expression:

    {"image": "images/0.png", "mask": "masks/0.png", "text": "the yellow triangle"}

Paths are relative to the file. A mask is a PNG of the image's size, single-channel (or RGB), 0 = background,
> 0 = the pixels the expression names; all zero for an expression that names nothing. Without split files the
suite's hash split decides, by image, so every expression of one image lands in the same split. A bad row (a
missing field, empty text, a missing or unreadable file, a mask of another size or kind) is named by file and
line and skipped (`--strict` stops at it).
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image

from tfmm.data.readers import SPLIT_FILES, jsonl_rows
from tfmm.data.sources import in_split
from tfmm.errors import TfmmError

REFS_FILE = "refs.jsonl"
MASK_MODES = {"1", "L", "P", "I", "I;16", "RGB"}  # single channel, or RGB (any channel > 0 counts)


def load_mask(data):
    """Encoded mask PNG bytes → uint8 (H, W) of 0/1; a mask of another kind is a `ValueError` saying which."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "PNG":
            raise ValueError(f"mask is a {image.format or 'non-image'} file, not a PNG")
        if image.mode not in MASK_MODES:
            raise ValueError(f"mask has mode {image.mode}; a single-channel or RGB PNG is needed")
        pixels = np.asarray(image.convert("I") if image.mode == "I;16" else image)
    if pixels.ndim == 3:
        pixels = pixels.max(axis=-1)
    return (pixels > 0).astype(np.uint8)


def _problem(row, root, images):
    """(why the row cannot be used or None, (image path, mask path))."""
    for field in ("image", "mask", "text"):
        if field not in row:
            return f"missing field {field!r}", None
    if not isinstance(row["text"], str) or not row["text"].strip():
        return "empty text", None
    image_path, mask_path = root / str(row["image"]), root / str(row["mask"])
    for name, path in (("image", image_path), ("mask", mask_path)):
        if not path.is_file():
            return f"{name} file not found: {path}", None
    reason = images.reason(image_path)  # TensorFlow's decoder, as the pipeline reads it
    if reason:
        return f"{image_path}: {reason}", None
    try:
        mask = load_mask(mask_path.read_bytes())
    except (ValueError, OSError) as error:
        return f"{mask_path}: {error}", None
    with Image.open(image_path) as image:
        width, height = image.size
    if mask.shape != (height, width):
        return f"mask {mask_path} is {mask.shape[1]}×{mask.shape[0]} but image {image_path} is {width}×{height}", None
    return None, (image_path, mask_path)


def read_refs_file(path, checks):
    """The usable rows of one JSON-lines file as `{"image_path", "mask_path", "text", "scene"}`; the scene is the
    image's path (every expression of an image shares its split). Bad rows are named and skipped (`checks`, a
    `DataChecks`, counts them, or stops when strict)."""
    path = Path(path)
    examples = []
    for number, row in jsonl_rows(path):
        problem, paths = _problem(row, path.parent, checks.images)
        if problem:
            checks.rows.reject(f"{path}:{number}", problem)
            continue
        examples.append({"image_path": str(paths[0]), "mask_path": str(paths[1]), "text": row["text"].strip(),
                         "scene": str(row["image"])})
    return examples


def read_refs_folder(folder, split, checks, validation_fraction=0.1):
    """The examples of `split` from a folder with split files or one `refs.jsonl` (hash split by image)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TfmmError(f"data folder not found: {folder}")
    if any((folder / f"{s}.jsonl").is_file() for s in SPLIT_FILES):
        file = folder / f"{split}.jsonl"
        if not file.is_file():
            raise TfmmError(f"{folder}: has split files but no {split}.jsonl")
        examples = read_refs_file(file, checks)
    elif (folder / REFS_FILE).is_file():
        examples = read_refs_file(folder / REFS_FILE, checks)
        examples = in_split(examples, split, validation_fraction) if examples else []
    else:
        raise TfmmError(f"{folder}: no {REFS_FILE} or train/validation/test.jsonl in it")
    if not examples:
        raise TfmmError(f"{folder}: no usable expressions in the {split} split")
    return examples
