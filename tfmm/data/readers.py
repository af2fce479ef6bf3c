"""Readers for user data: a folder with captions.jsonl/.csv, COCO-style caption JSON, TFRecord shards.

Each reader returns examples as dicts `{"image_path", "captions", "scene"}`; the
scene of a user image is its path (only the same file counts as the same scene).
"""

import csv
import json
from collections import OrderedDict
from pathlib import Path

import tensorflow as tf

from tfmm.errors import TfmmError

CAPTION_FILES = ("captions.jsonl", "captions.csv")


def _add(grouped, image, caption, where):
    if not isinstance(caption, str) or not caption.strip():
        raise TfmmError(f"{where}: empty caption for image {image!r}")
    if not isinstance(image, str) or not image:
        raise TfmmError(f"{where}: missing image path")
    grouped.setdefault(image, []).append(caption.strip())


def jsonl_rows(path):
    """(line number, object) for each non-empty line of a JSON-lines file; bad lines are named."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise TfmmError(f"{path}:{number}: invalid JSON: {error.msg}") from None
        if not isinstance(row, dict):
            raise TfmmError(f"{path}:{number}: each line must be a JSON object")
        yield number, row


def _rows_csv(path):
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), 2):
            yield number, row


def read_caption_file(path, image_root=None):
    """Reads (image, caption) rows from a .jsonl or .csv file; image paths are relative to `image_root`."""
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"caption file not found: {path}")
    root = Path(image_root) if image_root else path.parent
    rows = jsonl_rows(path) if path.suffix == ".jsonl" else _rows_csv(path)
    grouped = OrderedDict()
    for number, row in rows:
        for field in ("image", "caption"):
            if field not in row:
                raise TfmmError(f"{path}:{number}: missing field {field!r}")
        _add(grouped, row["image"], row["caption"], f"{path}:{number}")
    if not grouped:
        raise TfmmError(f"{path}: no captions")
    return [{"image_path": str(root / image), "captions": caps, "scene": image} for image, caps in grouped.items()]


def read_caption_folder(folder, split=None):
    """A folder with `<split>.jsonl`/`.csv` files or one `captions.jsonl`/`.csv` for everything."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TfmmError(f"data folder not found: {folder}")
    if split:
        for suffix in (".jsonl", ".csv"):
            if (folder / f"{split}{suffix}").is_file():
                return read_caption_file(folder / f"{split}{suffix}", folder)
    for name in CAPTION_FILES:
        if (folder / name).is_file():
            return read_caption_file(folder / name, folder)
    raise TfmmError(f"{folder}: no captions.jsonl, captions.csv or {split or 'train'}.jsonl/.csv in it")


def read_coco_captions(path, image_dir=None):
    """COCO-style captions: `{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}`."""
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"COCO caption file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TfmmError(f"{path}: invalid JSON: {error.msg}") from None
    for field in ("images", "annotations"):
        if field not in data:
            raise TfmmError(f"{path}: missing field {field!r}")
    if image_dir is None:
        image_dir = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    files = {}
    for index, image in enumerate(data["images"]):
        if "id" not in image or "file_name" not in image:
            raise TfmmError(f"{path}: images[{index}] needs 'id' and 'file_name'")
        files[image["id"]] = image["file_name"]
    grouped = OrderedDict()
    for index, annotation in enumerate(data["annotations"]):
        image_id = annotation.get("image_id")
        if image_id not in files:
            raise TfmmError(f"{path}: annotations[{index}] refers to unknown image_id {image_id!r}")
        _add(grouped, files[image_id], annotation.get("caption"), f"{path}: annotations[{index}]")
    return [{"image_path": str(Path(image_dir) / f), "captions": c, "scene": f} for f, c in grouped.items()]


def _feature_bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def write_tfrecord_shards(examples, output_dir, num_shards=8, image_check=None):
    """Writes examples (with image files) as `output_dir/data-XXXXX-of-YYYYY.tfrecord`; returns the file pattern.

    Shards are written to temporary names and renamed when complete, so a reader never
    sees a half-written shard.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if image_check is not None:
        examples = [e for e in examples if image_check.keep(e["image_path"])]
    if not examples:
        raise TfmmError("no examples to write")
    num_shards = max(1, min(num_shards, len(examples)))
    for shard in range(num_shards):
        final = output_dir / f"data-{shard:05d}-of-{num_shards:05d}.tfrecord"
        partial = final.with_suffix(".tfrecord.partial")
        with tf.io.TFRecordWriter(str(partial)) as writer:
            for example in examples[shard::num_shards]:
                features = {
                    "image_bytes": _feature_bytes([Path(example["image_path"]).read_bytes()]),
                    "captions": _feature_bytes([c.encode() for c in example["captions"]]),
                    "scene": _feature_bytes([example["scene"].encode()]),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
        partial.rename(final)
    return str(output_dir / "data-*-of-*.tfrecord")


def read_tfrecord_shards(pattern):
    """Streams shards written by `write_tfrecord_shards`: `{"image_bytes", "captions", "scene"}`."""
    files = tf.io.gfile.glob(str(pattern))
    if not files:
        raise TfmmError(f"no TFRecord files match {pattern}")
    spec = {
        "image_bytes": tf.io.FixedLenFeature([], tf.string),
        "captions": tf.io.VarLenFeature(tf.string),
        "scene": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        example["captions"] = tf.sparse.to_dense(example["captions"])
        return example

    files = tf.data.Dataset.from_tensor_slices(sorted(files))
    return files.interleave(tf.data.TFRecordDataset, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).map(
        parse, num_parallel_calls=tf.data.AUTOTUNE
    )
