"""Where captioned images come from for the caption app.

Every source gives `{"image": uint8 (S, S, 3), "captions": string (n,), "objects": string}`:
all reference captions of an image, and its objects as `"colour shape|colour shape"` where they
are known (the built-in sources), else "" — the caption evaluation checks generated captions
against them.

- `shapes`: the built-in scenes (5 phrasings each, objects from the scene description);
- `easy_vqa`: the real easy-VQA images (from the `easy-vqa` package), captioned from their own
  questions: the answers to "what shape…" and "what color…" give the shape and colour, written in
  six phrasings. Official train → train and validation (hashed by image id), official test → test;
- anything the retrieval app reads: a folder with captions.jsonl/.csv, COCO-style caption JSON,
  TFRecord shards (`tfmm.data.sources`).
"""

import tensorflow as tf

from tfmm.data import easy_vqa, shapes
from tfmm.data.images import decode_and_resize
from tfmm.data.question_groups import split_groups
from tfmm.data.sources import load_captioned_images
from tfmm.errors import TfmmError

EASY_VQA_PHRASINGS = (
    "a {colour} {shape}",
    "a {colour} {shape} on a light background",
    "there is a {colour} {shape} in the image",
    "an image of a {colour} {shape}",
    "a picture showing a {colour} {shape}",
    "one {colour} {shape}",
)

# The words the object check looks for, per built-in source: (colours, shapes).
OBJECT_WORDS = {"shapes": (shapes.COLOURS, shapes.SHAPES), "easy_vqa": (tuple(easy_vqa.COLOURS), easy_vqa.SHAPES)}


def object_words(source):
    """(colours, shapes) named by the source's captions, or None for user data."""
    return OBJECT_WORDS.get(source)


def load_caption_examples(data, split, image_check):
    """The examples of `split` from `data.source` (a `DataConfig`)."""
    if data.source == "shapes":
        # The scene lists "size colour shape" per object, left to right.
        return load_captioned_images(data, split, image_check).map(lambda e: {
            "image": e["image"], "captions": e["captions"],
            "objects": tf.strings.regex_replace(e["scene"], "(small|large) ", ""),
        }, num_parallel_calls=tf.data.AUTOTUNE)
    if data.source == "easy_vqa":
        return _easy_vqa(data, split, image_check)
    examples = load_captioned_images(data, split, image_check)
    return examples.map(lambda e: {"image": e["image"], "captions": e["captions"], "objects": tf.constant("")},
                        num_parallel_calls=tf.data.AUTOTUNE)


def _easy_vqa(data, split, image_check):
    if split == "heldout":
        raise TfmmError("data.source easy_vqa has the splits train, validation and test (no heldout)")
    examples = []
    for group in split_groups("easy_vqa", split, data.validation_fraction, image_check):
        colour, shape = easy_vqa.scene_from_questions(group["questions"], group["answers"])
        if colour and shape:  # the official questions tell both for all but a few images
            examples.append({"image_path": group["image_path"], "objects": f"{colour} {shape}",
                             "captions": [p.format(colour=colour, shape=shape) for p in EASY_VQA_PHRASINGS]})
    if not examples:
        raise TfmmError(f"easy_vqa {split}: no image whose colour and shape its questions tell")
    size = data.image_size
    dataset = tf.data.Dataset.from_tensor_slices({key: [e[key] for e in examples] for key in examples[0]})
    return dataset.map(lambda e: {"image": decode_and_resize(tf.io.read_file(e["image_path"]), size),
                                  "captions": e["captions"], "objects": e["objects"]},
                       num_parallel_calls=tf.data.AUTOTUNE)
