"""Where classification data comes from: the built-in `shapes_reports` task, or a user table of
image path + text + one or more label columns (CSV or JSONL).

Every source gives `{"image": uint8 (S, S, 3), "text": string, "labels": {task: string}}`.
A user table may be one file (validation and test are then carved out by a hash of the image
path) or a folder with `train`, `validation` and `test` files. Image paths are relative to the
table's folder unless absolute.

Bad rows are named by file and line: without `--strict` they are skipped and counted (an empty
text, an empty label, a missing or unreadable image); with it the first one stops the run. A
label column missing from the table is always an error.
"""

import csv
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfmm.data.images import decode_and_resize, resize_pixels
from tfmm.data.readers import jsonl_rows
from tfmm.data.sources import hash_split
from tfmm.errors import TfmmError

SPLITS = ("train", "validation", "test")


def read_table(path):
    """Rows of a .csv (with a header) or .jsonl file as (line number, dict)."""
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"data file not found: {path}")
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), [(n + 2, row) for n, row in enumerate(reader)]
    if path.suffix == ".jsonl":
        rows = list(jsonl_rows(path))
        columns = {}
        for _, row in rows:
            columns.update(dict.fromkeys(row))
        return list(columns), rows
    raise TfmmError(f"{path}: classification data must be a .csv or .jsonl file")


def _table_for_split(source, split):
    source = Path(source).expanduser()
    if source.is_dir():
        for suffix in (".csv", ".jsonl"):
            if (source / f"{split}{suffix}").is_file():
                return source / f"{split}{suffix}", False
        raise TfmmError(f"{source} has no {split}.csv or {split}.jsonl")
    return source, True


def read_rows(data, split, image_check, row_check):
    """Validated rows of `split`: (image path, text, {task: label}); bad rows skipped or fatal."""
    path, hashed = _table_for_split(data.source, split)
    columns, rows = read_table(path)
    needed = [data.image_column, data.text_column, *data.label_columns]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise TfmmError(f"{path}: column(s) {', '.join(missing)} missing (it has {', '.join(columns) or 'none'}); "
                        "set data.image_column, data.text_column and data.label_columns")
    kept, keys = [], []
    for number, row in rows:
        where = f"{path}:{number}"
        text = str(row.get(data.text_column) or "").strip()
        labels = {c: str(row.get(c) if row.get(c) is not None else "").strip() for c in data.label_columns}
        empty = [c for c, v in labels.items() if not v]
        if empty:
            row_check.reject(where, f"label column {empty[0]!r} is empty")
            continue
        if not text:
            row_check.reject(where, f"text column {data.text_column!r} is empty")
            continue
        given = str(row.get(data.image_column) or "")
        image = Path(given) if Path(given).is_absolute() else path.parent / given
        if not image_check.keep(image):
            continue
        kept.append((str(image), text, labels))
        keys.append(given)  # the path as the table writes it: the split stays when the folder moves
    if hashed and kept:
        names = hash_split(tf.constant(keys), data.validation_fraction).numpy()
        kept = [row for row, name in zip(kept, names) if name.decode() == split]
    return kept


def labelled_dataset(data, split, image_check, row_check):
    """The examples of `split` from `data.source` ("shapes_reports" or a table) as a tf.data.Dataset."""
    if split not in SPLITS:
        raise TfmmError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if data.source == "shapes_reports":
        return _shapes_reports(data, split)
    rows = read_rows(data, split, image_check, row_check)
    if not rows:
        raise TfmmError(f"data.source {data.source}: no usable rows in split {split}")
    columns = {
        "image_path": [r[0] for r in rows], "text": [r[1] for r in rows],
        "labels": {task: [r[2][task] for r in rows] for task in data.label_columns},
    }
    size = data.image_size

    def load(example):
        return {"image": decode_and_resize(tf.io.read_file(example["image_path"]), size), "text": example["text"],
                "labels": example["labels"]}

    return tf.data.Dataset.from_tensor_slices(columns).map(load, num_parallel_calls=tf.data.AUTOTUNE)


def _shapes_reports(data, split):
    from tfmm.data import reports, shapes_builder

    examples = list(shapes_builder.load(split, config=data.shapes_config, data_dir=data.data_dir or None).as_numpy_iterator())
    texts, labels = reports.reports_for_split(examples, split)
    images = np.stack([e["image"] for e in examples])
    if images.shape[1] != data.image_size:
        images = resize_pixels(images, data.image_size).numpy()
    return tf.data.Dataset.from_tensor_slices({"image": images, "text": texts, "labels": labels})
