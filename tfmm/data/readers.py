"""Readers for user data: a folder with captions.jsonl/.csv, COCO-style caption JSON, TFRecord shards.

Each reader returns examples as dicts `{"image_path", "captions", "scene"}`; the
scene of a user image is its path (only the same file counts as the same scene).
"""

import csv
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfmm.data.checks import image_problem
from tfmm.errors import TfmmError

CAPTION_FILES = ("captions.jsonl", "captions.csv")


def _add(grouped, image, caption, where):
    if not isinstance(caption, str) or not caption.strip():
        raise TfmmError(f"{where}: empty caption for image {image!r}")
    if not isinstance(image, str) or not image:
        raise TfmmError(f"{where}: missing image path")
    grouped.setdefault(image, []).append(caption.strip())


def read_json_file(path, what="JSON file"):
    """The parsed contents of a JSON file; a missing or unparsable file is a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TfmmError(f"{path}: invalid JSON ({error})") from None


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


SPLIT_FILES = ("train", "validation", "test")


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


def split_files(folder):
    """The splits a caption folder names with its own `<split>.jsonl`/`.csv` files."""
    folder = Path(folder)
    return [s for s in SPLIT_FILES if any((folder / f"{s}{x}").is_file() for x in (".jsonl", ".csv"))]


def read_caption_folder_with_splits(folder):
    """Every example of a caption folder; with split files, each example keeps its `split`."""
    splits = split_files(folder)
    if not splits:
        return read_caption_folder(folder)
    return [{**e, "split": s} for s in splits for e in read_caption_folder(folder, s)]


# Karpathy's split names (dataset_coco.json) → the suite's: "restval" is the extra training part.
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "validation", "validation": "validation", "test": "test"}


def _split_field(entry, where, path):
    value = entry.get("split")
    if value is None:
        return None
    if value not in KARPATHY_SPLITS:
        raise TfmmError(f"{path}: {where} split {value!r}; valid: {', '.join(KARPATHY_SPLITS)}")
    return KARPATHY_SPLITS[value]


def _with_splits(examples, path):
    """All examples keep an explicit split, or none does (then the suite's hash split decides)."""
    marked = [e for e in examples if e.get("split")]
    if marked and len(marked) != len(examples):
        unmarked = next(e["scene"] for e in examples if not e.get("split"))
        raise TfmmError(f"{path}: some images have a 'split' field and {unmarked!r} has none; give every image one")
    if not marked:
        for example in examples:
            example.pop("split", None)
    return examples


def read_coco_captions(path, image_dir=None):
    """COCO-style captions `{"images": [{"id", "file_name", "split"?}], "annotations": [{"image_id", "caption"}]}`,
    or Karpathy's `dataset_coco.json` `{"images": [{"filepath"?, "filename", "split", "sentences": [{"raw"}]}]}`.

    An image's `split` field (train, restval, val, test) is kept on its example; the data sources honour it.
    """
    path = Path(path)
    data = read_json_file(path, "COCO caption file")
    if not isinstance(data, dict) or "images" not in data:
        raise TfmmError(f"{path}: missing field 'images'")
    if image_dir is None:
        image_dir = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    if "annotations" not in data and all(isinstance(i, dict) and "sentences" in i for i in data["images"]):
        return _with_splits(_karpathy(data["images"], path, Path(image_dir)), path)
    if "annotations" not in data:
        raise TfmmError(f"{path}: missing field 'annotations'")
    files, splits = {}, {}
    for index, image in enumerate(data["images"]):
        if "id" not in image or "file_name" not in image:
            raise TfmmError(f"{path}: images[{index}] needs 'id' and 'file_name'")
        files[image["id"]] = image["file_name"]
        splits[image["file_name"]] = _split_field(image, f"images[{index}]", path)
    grouped = OrderedDict()
    for index, annotation in enumerate(data["annotations"]):
        image_id = annotation.get("image_id")
        if image_id not in files:
            raise TfmmError(f"{path}: annotations[{index}] refers to unknown image_id {image_id!r}")
        _add(grouped, files[image_id], annotation.get("caption"), f"{path}: annotations[{index}]")
    return _with_splits([{"image_path": str(Path(image_dir) / f), "captions": c, "scene": f, "split": splits[f]}
                         for f, c in grouped.items()], path)


def _karpathy(images, path, image_dir):
    examples = []
    for index, image in enumerate(images):
        if "filename" not in image:
            raise TfmmError(f"{path}: images[{index}] needs 'filename'")
        name = str(Path(image.get("filepath", "")) / image["filename"])
        grouped = OrderedDict()
        for number, sentence in enumerate(image["sentences"]):
            caption = sentence.get("raw") if isinstance(sentence, dict) else None
            _add(grouped, name, caption, f"{path}: images[{index}].sentences[{number}]")
        examples.append({"image_path": str(image_dir / name), "captions": grouped[name], "scene": name,
                         "split": _split_field(image, f"images[{index}]", path)})
    return examples


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
                    "split": _feature_bytes([example.get("split", "").encode()]),  # "": the hash split decides
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
        partial.rename(final)
    return str(output_dir / "data-*-of-*.tfrecord")


RECORD_SPEC = {
    "image_bytes": tf.io.FixedLenFeature([], tf.string),
    "captions": tf.io.VarLenFeature(tf.string),
    "scene": tf.io.FixedLenFeature([], tf.string),
    "split": tf.io.FixedLenFeature([], tf.string, default_value=""),  # shards written before splits were kept
}


def _parse(record):
    example = tf.io.parse_single_example(record, RECORD_SPEC)
    example["captions"] = tf.sparse.to_dense(example["captions"])
    return example


def _readable_records(path, image_check):
    """(records read, [bool per record: parses and its image decodes]) for one shard; the bad ones are
    named and counted by `image_check`. A corrupt record (failed checksum) ends what can be read of
    its shard: the lengths after it cannot be trusted."""
    keep = []
    records = iter(tf.data.TFRecordDataset(path))
    while True:
        where = f"{path}: record {len(keep)}"
        try:
            record = next(records)
        except StopIteration:
            return keep
        except tf.errors.DataLossError as error:
            image_check.reject(where, f"corrupt record ({error.message.strip()[:120]}); the rest of the shard is skipped")
            return keep
        try:
            problem = image_problem(_parse(record)["image_bytes"])
        except tf.errors.InvalidArgumentError as error:
            problem = f"not a tfmm record ({error.message.strip().splitlines()[0][:120]})"
        keep.append(problem is None or image_check.reject(where, problem))


def read_tfrecord_shards(pattern, image_check=None):
    """Streams shards written by `write_tfrecord_shards`: `{"image_bytes", "captions", "scene", "split"}`.

    With an `image_check`, every record is read and its image decoded once first; corrupt records
    and undecodable images are named and skipped (or stop a strict run) instead of failing training.
    """
    files = sorted(tf.io.gfile.glob(str(pattern)))
    if not files:
        raise TfmmError(f"no TFRecord files match {pattern}")
    if image_check is None:  # trusted shards: stream them as they are
        counts, offsets, keep = np.full(len(files), -1), np.zeros(len(files)), None
    else:
        key = str(pattern)
        if key not in image_check.scans:  # read again for another split: scanned once
            image_check.scans[key] = [_readable_records(f, image_check) for f in files]
        flags = image_check.scans[key]
        counts = np.array([len(k) for k in flags])
        offsets = np.cumsum(counts) - counts
        keep = tf.constant([flag for k in flags for flag in k] or [False], tf.bool)
    table = tf.data.Dataset.from_tensor_slices((files, counts.astype(np.int64), offsets.astype(np.int64)))

    def shard(path, count, offset):
        records = tf.data.TFRecordDataset(path)
        if keep is None:
            return records
        return records.take(count).enumerate().filter(lambda i, _: keep[offset + i]).map(lambda _, record: record)

    return table.interleave(shard, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).map(
        _parse, num_parallel_calls=tf.data.AUTOTUNE
    )
