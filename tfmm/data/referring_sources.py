"""Data for referring segmentation: the built-in `shapes` expressions (`tfmm_shapes_referring`), easy-VQA images
with masks from their pixels (`tfmm.data.referring_easy_vqa`), RefCOCO-style COCO JSON (`tfmm.data.referring_coco`),
or a folder with `refs.jsonl` (or `train/validation/test.jsonl`), one line per expression:

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
import tensorflow as tf
from PIL import Image

from tfmm.data.images import decode_and_resize, resize_pixels
from tfmm.data.readers import SPLIT_FILES, jsonl_rows
from tfmm.data.referring import KINDS
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
    """The examples of `split` from a folder with split files or one `refs.jsonl` (hash split by image);
    `split=None`: the folder's test.jsonl, or all of its refs.jsonl (what `eval --data` scores)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TfmmError(f"data folder not found: {folder}")
    if any((folder / f"{s}.jsonl").is_file() for s in SPLIT_FILES):
        file = folder / f"{split or 'test'}.jsonl"
        if not file.is_file():
            raise TfmmError(f"{folder}: has split files but no {file.name}")
        examples = read_refs_file(file, checks)
    elif (folder / REFS_FILE).is_file():
        examples = read_refs_file(folder / REFS_FILE, checks)
        examples = in_split(examples, split, validation_fraction) if examples and split else examples
    else:
        raise TfmmError(f"{folder}: no {REFS_FILE} or train/validation/test.jsonl in it")
    if not examples:
        raise TfmmError(f"{folder}: no usable expressions" + (f" in the {split} split" if split else ""))
    return examples


SHAPES_ONLY_SPLITS = ("heldout", "phrasing")


def resize_mask(mask, image_size):
    """0/1 mask (H, W) → (size, size) as images are resized: a pixel is named when more than half of what it
    covers is."""
    mask = tf.convert_to_tensor(mask)
    if mask.shape[0] == image_size and mask.shape[1] == image_size:
        return tf.cast(mask > 0, tf.uint8)
    area = tf.image.resize(tf.cast(mask > 0, tf.float32)[..., None], (image_size, image_size), method="area")[..., 0]
    return tf.cast(area > 0.5, tf.uint8)


def _user_examples(data, split, checks):
    """Examples `{"image_path", "text", "kind", "mask" (S, S)}` of a user source: an easy-VQA-layout folder (or
    "easy_vqa"), a RefCOCO-style JSON file, or a refs folder; `split=None` reads it whole where it can."""
    from tfmm.data.referring_coco import read_coco_refs
    from tfmm.data.referring_easy_vqa import easy_vqa_referring

    source, size = data.source, data.image_size
    if source == "easy_vqa" or (Path(source) / "questions.json").is_file() \
            or (Path(source) / "train" / "questions.json").is_file():
        return easy_vqa_referring(source, split, data.validation_fraction, checks, size)
    if str(source).endswith(".json"):
        examples = read_coco_refs(source, checks, size)
        examples = in_split(examples, split, data.validation_fraction) if examples and split else examples
        if not examples:
            raise TfmmError(f"{source}: no usable expressions" + (f" in the {split} split" if split else ""))
    else:
        examples = read_refs_folder(source, split, checks, data.validation_fraction)
        for example in examples:
            example["mask"] = resize_mask(load_mask(Path(example["mask_path"]).read_bytes()), size).numpy()
    for example in examples:
        example["kind"] = "target" if example["mask"].any() else "no_target"
    return examples


def load_referring(data, split, checks):
    """`{"image" uint8 (S, S, 3), "mask" uint8 (S, S), "text", "kind"}` of `split` at `data.image_size`: the built-in
    expressions (`data.source = "shapes"`; kinds as `tfmm.data.referring`; these also have `shape_map` and
    `colour_map`, uint8 (S, S): the shape and the colour under each pixel, `tfmm.data.referring.class_maps`),
    easy-VQA images with masks from their pixels (`"easy_vqa"` or a folder in its layout; kinds
    `attribute` and `no_target`), a RefCOCO-style JSON file, or a refs folder (kind `target` or `no_target`, by the
    mask); `split=None` reads a user source whole (see `read_refs_folder`)."""
    size = data.image_size
    if data.source == "shapes":
        from tfmm.data import referring_builder

        kinds = tf.constant(KINDS)

        def select(example):
            image, mask = example["image"], example["mask"]
            maps = {key: example[key] for key in ("shape_map", "colour_map")}
            if image.shape[0] != size:
                image, mask = resize_pixels(image, size), resize_mask(mask, size)
                maps = {key: tf.image.resize(m[..., None], (size, size), method="nearest")[..., 0] for key, m in maps.items()}
            return {"image": image, "mask": mask, **maps, "text": example["text"], "kind": tf.gather(kinds, example["kind"])}

        dataset = referring_builder.load(split, config=data.shapes_config, data_dir=data.data_dir or None)
        return dataset.map(select, num_parallel_calls=tf.data.AUTOTUNE)
    if split in SHAPES_ONLY_SPLITS:
        raise TfmmError(f"the {split} split is the built-in shapes data's; {data.source} has train, validation, test")
    examples = _user_examples(data, split, checks)
    dataset = tf.data.Dataset.from_tensor_slices({key: [e[key] for e in examples]
                                                  for key in ("image_path", "mask", "text", "kind")})
    return dataset.map(lambda e: {"image": decode_and_resize(tf.io.read_file(e["image_path"]), size),
                                  "mask": e["mask"], "text": e["text"], "kind": e["kind"]},
                       num_parallel_calls=tf.data.AUTOTUNE)
