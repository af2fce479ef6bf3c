"""Referring expressions on easy-VQA images (the official ones in the `easy-vqa` package, or any folder in its
layout, such as fresh images from `tfmm.data.easy_vqa.generate`).

Each image shows one shape in one colour on a light background. Its colour and shape come from its own questions
(`easy_vqa.scene_from_questions`); its mask from its pixels: a pixel belongs to the shape when it lies nearer the
shape's colour than the background's along the line between them (the anti-aliased edge splits at half way).
Expressions name the shape by what it is ("the yellow triangle", "the triangle", "the yellow shape") — kind
`attribute` — or by what it is not ("the red triangle", "the yellow circle", "the circle"): kind `no_target`, an
empty mask. An image whose questions do not tell both its colour and its shape is skipped and counted.
"""

import zlib

import numpy as np
from PIL import Image

from tfmm.data import easy_vqa
from tfmm.data.easy_vqa import shape_mask
from tfmm.data.question_groups import directory_groups, split_directory, split_groups
from tfmm.data.referring import PHRASINGS


def _phrases(colour, shape):
    """(noun phrases that name the shape, noun phrases that name nothing in the image)."""
    other_colours = [c for c in easy_vqa.COLOURS if c != colour]
    other_shapes = [s for s in easy_vqa.SHAPES if s != shape]
    named = [f"{colour} {shape}", shape, f"{colour} shape", f"{colour} object"]
    absent = ([f"{c} {shape}" for c in other_colours] + [f"{colour} {s}" for s in other_shapes]
              + other_shapes + [f"{c} shape" for c in other_colours])
    return named, absent


def image_expressions(image_id, colour, shape, phrasing="train", no_target=2):
    """Every naming phrase of the image and `no_target` absent ones, each in a phrasing drawn from the image id:
    a list of (text, kind)."""
    rng = np.random.default_rng(zlib.crc32(str(image_id).encode()))
    templates = PHRASINGS["single"][phrasing]
    named, absent = _phrases(colour, shape)
    chosen = [(p, "attribute") for p in named]
    chosen += [(absent[i], "no_target") for i in rng.choice(len(absent), size=no_target, replace=False)]
    return [(templates[int(rng.integers(len(templates)))].format(phrase), kind) for phrase, kind in chosen]


def easy_vqa_referring(source, split, validation_fraction, checks, image_size):
    """Examples `{"image_path", "text", "kind", "mask" uint8 (image_size, image_size)}` of `split` (the splits
    `tfmm.data.question_groups.split_groups` makes) from `source`: "easy_vqa" or a folder in its layout;
    `split=None`: the whole test folder (the official test split, or a single folder such as fresh images)."""
    from tfmm.data.referring_sources import resize_mask  # one resize rule for every mask source

    examples, untold = [], 0
    if split is None:
        folder = easy_vqa.package_directory("test") if source == "easy_vqa" else split_directory(source, "test")
        groups, _ = directory_groups(folder, checks.images)
    else:
        groups = split_groups(source, split, validation_fraction, checks.images)
    for group in groups:
        colour, shape = easy_vqa.scene_from_questions(group["questions"], group["answers"])
        if not (colour and shape):
            untold += 1
            continue
        with Image.open(group["image_path"]) as image:
            pixels = np.asarray(image.convert("RGB"))
        mask = resize_mask(shape_mask(pixels, easy_vqa.COLOURS[colour]), image_size).numpy()
        for text, kind in image_expressions(group["image_id"], colour, shape):
            examples.append({"image_path": group["image_path"], "text": text, "kind": kind,
                             "mask": mask if kind == "attribute" else np.zeros_like(mask)})
    if untold:
        checks.images.log(f"{source} {split or 'test'}: skipped {untold} images whose questions do not tell colour and shape")
    return examples
