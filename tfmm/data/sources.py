"""Where captioned images come from: the built-in `shapes`, a folder, COCO JSON, or TFRecord shards.

Every source gives the same example structure: `{"image": uint8 (S, S, 3),
"captions": string (n,), "scene": string}`, decoded in parallel.
"""

from pathlib import Path

import tensorflow as tf

from tfmm.data import readers
from tfmm.data.images import decode_and_resize, resize_pixels
from tfmm.errors import TfmmError

SPLITS = ("train", "validation", "test", "heldout")


def hash_split(scene, fraction):
    """Deterministic split of user data without split files: validation and test get `fraction` each.

    One in-graph hash for every source, so a caption folder and the TFRecord shards made
    from it (tools/prepare_data.py) put each image in the same split.
    """
    bucket = tf.cast(tf.strings.to_hash_bucket_fast(scene, 10000), tf.float32) / 10000.0
    return tf.where(bucket < fraction, "validation", tf.where(bucket < 2 * fraction, "test", "train"))


def _from_examples(examples, image_size):
    if not examples:
        raise TfmmError("no usable examples left after skipping unreadable images")
    dataset = tf.data.Dataset.from_tensor_slices({
        "image_path": [e["image_path"] for e in examples],
        "captions": tf.ragged.constant([e["captions"] for e in examples]),
        "scene": [e["scene"] for e in examples],
    })

    def decode(example):
        return {
            "image": decode_and_resize(tf.io.read_file(example["image_path"]), image_size),
            "captions": example["captions"],
            "scene": example["scene"],
        }

    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def load_shapes(split, config="default", data_dir="", image_size=None):
    from tfmm.data import shapes_builder

    dataset = shapes_builder.load(split, config=config, data_dir=data_dir or None)

    def select(example):
        image = example["image"]
        if image_size and image.shape[0] != image_size:
            image = resize_pixels(image, image_size)
        return {"image": image, "captions": example["captions"], "scene": example["scene"], "label": example["label"]}

    return dataset.map(select, num_parallel_calls=tf.data.AUTOTUNE)


def load_captioned_images(data, split, image_check):
    """The examples of `split` from the source named by `data.source` (a `DataConfig`)."""
    if split not in SPLITS:
        raise TfmmError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    source = data.source
    if source == "shapes":
        return load_shapes(split, data.shapes_config, data.data_dir, data.image_size)
    if split == "heldout":
        raise TfmmError(f"data.source {source}: user data has no 'heldout' split (only the shapes dataset does)")
    path = Path(source).expanduser()
    if path.suffix == ".json":
        examples = in_split(readers.read_coco_captions(path), split, data.validation_fraction)
    elif path.is_dir():
        if readers.split_files(path):
            examples = readers.read_caption_folder(path, split)
        else:
            examples = in_split(readers.read_caption_folder(path), split, data.validation_fraction)
    elif "*" in source or path.suffix == ".tfrecord":
        records = readers.read_tfrecord_shards(source, image_check)

        def chosen(example):  # a split written into the shards (tools/prepare_data.py keeps them), else the hash
            explicit = example["split"]
            return tf.where(explicit != "", explicit, hash_split(example["scene"], data.validation_fraction)) == split

        return records.filter(chosen).map(lambda e: {
            "image": decode_and_resize(e["image_bytes"], data.image_size), "captions": e["captions"], "scene": e["scene"]
        }, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        raise TfmmError(f"data.source {source!r}: not 'shapes', a folder, a COCO .json or a TFRecord pattern")
    if not examples:
        raise TfmmError(f"data.source {source}: no examples in the {split} split")
    examples = [e for e in examples if image_check.keep(e["image_path"])]
    return _from_examples(examples, data.image_size)


def in_split(examples, split, validation_fraction):
    """The examples of `split`: by their own `split` field (COCO/Karpathy JSON) where they have one, else by
    the suite's hash split of their scene."""
    if examples and examples[0].get("split"):
        return [e for e in examples if e["split"] == split]
    names = hash_split(tf.constant([e["scene"] for e in examples]), validation_fraction).numpy()
    return [e for e, name in zip(examples, names) if name.decode() == split]
