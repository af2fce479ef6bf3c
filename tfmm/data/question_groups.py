"""Where VQA data comes from: easy-VQA (official splits), the built-in `shapes` questions, the
built-in video `clips`, or a directory in easy-VQA's layout.

Every source gives *question groups*: one image (or clip) with the questions asked about it,

    {"image": uint8 (S, S, 3) or (frames, S, S, 3), "image_id": string,
     "questions": string (q,), "answers": string (q,), "types": string (q,)}

so a training step can encode each image once and apply it to all its questions. Groups of
more than `max_questions` questions are split into balanced chunks of at most that many.
"""

import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfmm.data import clips as clip_data
from tfmm.data import easy_vqa
from tfmm.data.images import decode_and_resize, resize_pixels
from tfmm.data.sources import hash_split
from tfmm.errors import TfmmError

SPLITS = ("train", "validation", "test")
BUILT_IN = ("easy_vqa", "shapes", "clips")


def _chunks(group, max_questions):
    count = len(group["questions"])
    pieces = max(1, math.ceil(count / max_questions))
    bounds = np.linspace(0, count, pieces + 1).round().astype(int)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        yield {**group, "questions": group["questions"][start:stop], "answers": group["answers"][start:stop],
               "types": group["types"][start:stop]}


def groups_dataset(groups, max_questions, image_fn):
    """A tf.data of question groups; `image_fn(image_ref)` loads each image in the graph."""
    chunks = [chunk for group in groups for chunk in _chunks(group, max_questions)]
    if not chunks:
        raise TfmmError("no usable question groups left (every image was skipped or the split is empty)")
    columns = {
        "image_ref": [c["image_ref"] for c in chunks],
        "image_id": [c["image_id"] for c in chunks],
        "questions": tf.ragged.constant([c["questions"] for c in chunks]),
        "answers": tf.ragged.constant([c["answers"] for c in chunks]),
        "types": tf.ragged.constant([c["types"] for c in chunks]),
    }
    def load_image(group):
        return {"image": image_fn(group["image_ref"]), **{k: v for k, v in group.items() if k != "image_ref"}}

    return tf.data.Dataset.from_tensor_slices(columns).map(load_image, num_parallel_calls=tf.data.AUTOTUNE)


def directory_groups(path, image_check):
    """Question groups of one easy-VQA-layout directory (images missing or unreadable are skipped
    and reported by name, or stop the run under strict checking) and its `answers.txt`, if any."""
    groups, answers = easy_vqa.read_directory(path)
    kept = []
    for group in groups:
        if image_check.keep(group["image_path"]):
            group["types"] = [easy_vqa.question_type(a) for a in group["answers"]]
            group["image_ref"] = group["image_path"]
            kept.append(group)
    return kept, answers


def split_directory(root, split):
    """The directory holding `split` under a dataset root (the root itself when it has no split folders)."""
    root = Path(root)
    if (root / "train" / "questions.json").is_file():
        return root / ("test" if split == "test" else "train")
    return root


def load_question_groups(data, split, image_check):
    """The question groups of `split` from `data.source` (a `VQADataConfig`)."""
    if split not in SPLITS:
        raise TfmmError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    source, size, max_questions = data.source, data.image_size, data.max_questions_per_image
    if source == "shapes":
        return _shapes_groups(data, split, max_questions)
    if source == "clips":
        return _clip_groups(data, split, max_questions)
    groups = split_groups(source, split, data.validation_fraction, image_check)
    return groups_dataset(groups, max_questions, lambda path: decode_and_resize(tf.io.read_file(path), size))


def split_groups(source, split, validation_fraction, image_check):
    """The question groups (Python dicts with `image_path`) of `split` of easy-VQA or an easy-VQA-layout root."""
    root = easy_vqa.package_directory("train").parent if source == "easy_vqa" else Path(source).expanduser()
    if source != "easy_vqa" and not root.is_dir():
        raise TfmmError(f"data.source {source!r}: not one of {', '.join(BUILT_IN)} and not a directory")
    has_splits = (root / "train" / "questions.json").is_file()
    directory = split_directory(root, split)
    groups, _ = directory_groups(directory, image_check)
    if groups and (not has_splits or split != "test"):
        # Carve validation (and, for a single directory, test) out by the suite's hash of the image id; with
        # an official test folder, the hash's "test" share stays in training.
        names = [n.decode() for n in hash_split(tf.constant([g["image_id"] for g in groups]), validation_fraction).numpy()]
        if has_splits:
            names = ["validation" if n == "validation" else "train" for n in names]
        groups = [g for g, name in zip(groups, names) if name == split]
    return groups


def _shapes_groups(data, split, max_questions):
    from tfmm.data import shapes_builder

    examples = shapes_builder.load(split, config=data.shapes_config, data_dir=data.data_dir or None)
    groups, images = [], []
    for example in examples.as_numpy_iterator():
        qa = example["questions"]
        groups.append({
            "image_ref": len(images), "image_id": example["id"].decode(),
            "questions": [q.decode() for q in qa["question"]], "answers": [a.decode() for a in qa["answer"]],
            "types": [t.decode() for t in qa["type"]],
        })
        images.append(example["image"])
    return _in_memory(groups, np.stack(images), data.image_size, max_questions)


def _clip_groups(data, split, max_questions):
    clips, questions = clip_data.generate_split(split, data.clips_size, data.frames, data.image_size)
    groups = [{
        "image_ref": index, "image_id": f"{split}-clip-{index:05d}",
        "questions": [q for q, _, _ in qa], "answers": [a for _, a, _ in qa], "types": [t for _, _, t in qa],
    } for index, qa in enumerate(questions)]
    return _in_memory(groups, clips, data.image_size, max_questions)


def _in_memory(groups, images, image_size, max_questions):
    if images.shape[-2] != image_size:
        flat = images.reshape(-1, *images.shape[-3:])
        flat = resize_pixels(flat, image_size).numpy()
        images = flat.reshape(*images.shape[:-3], image_size, image_size, 3)
    table = tf.constant(images)
    return groups_dataset(groups, max_questions, lambda index: tf.gather(table, index))


def pad_group(group, width):
    """A question group padded to `width` questions (empty strings), with `real` marking the real ones:
    groups of one batch then stack to (batch, width)."""
    count = tf.shape(group["questions"])[0]
    padding = width - count

    def padded(values):
        return tf.reshape(tf.concat([values, tf.fill([padding], "")], 0), [width])

    return {"image": group["image"], "image_id": group["image_id"], "questions": padded(group["questions"]),
            "answers": padded(group["answers"]), "types": padded(group["types"]),
            "real": tf.reshape(tf.concat([tf.ones([count], tf.bool), tf.zeros([padding], tf.bool)], 0), [width])}
