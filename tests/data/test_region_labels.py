"""Label maps of what each pixel shows: a shapes scene's shape and colour channels are the referring data's maps, its
colour channel names the colour rendered there and its size channel the object's size; an easy-VQA image's shape is found from its pixels, with the classes
its questions tell (UNKNOWN where they do not)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tfmm.data import easy_vqa
from tfmm.data.referring import class_maps
from tfmm.data.referring_easy_vqa import shape_mask
from tfmm.data.region_labels import (
    REGION_COLOURS,
    REGION_SHAPES,
    REGION_SIZES,
    UNKNOWN,
    easy_vqa_label_map,
    scene_label_map,
)
from tfmm.data.shapes import RGB, object_masks, render, sample_scene


def test_the_classes_cover_both_image_sources():
    assert set(REGION_SHAPES) == {"circle", "square", "triangle", "star", "cross", "rectangle"}
    assert set(REGION_COLOURS) == set(RGB) | set(easy_vqa.COLOURS) and len(REGION_COLOURS) == len(set(REGION_COLOURS))


def test_a_scene_map_names_the_shape_and_the_colour_drawn_at_each_pixel():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        scene = sample_scene(rng, 64, "train")
        labels = scene_label_map(scene, 64)
        maps = class_maps(scene, 64)  # the segmenter's targets are these channels
        np.testing.assert_array_equal(labels[..., 0], maps["shape_map"])
        np.testing.assert_array_equal(labels[..., 1], maps["colour_map"])
        assert ((labels[..., 0] == 0) == (labels[..., 1] == 0)).all() and ((labels[..., 0] == 0) == (labels[..., 2] == 0)).all()
        for obj, mask in zip(scene.objects, object_masks(scene, 64)):  # objects meet at most at their edges
            assert (labels[mask, 2] == REGION_SIZES.index(obj.size) + 1).mean() > 0.9, seed
        pixels = render(scene, 64, rng).astype(int)
        colours = np.array([RGB[c] for c in REGION_COLOURS[:len(RGB)]])
        # away from the edges (anti-aliasing blends there) each pixel is nearest the colour its label names
        padded = np.pad(labels[..., 1], 1)
        inside = (labels[..., 1] > 0) & np.all([padded[1 + dy:65 + dy, 1 + dx:65 + dx] == labels[..., 1]
                                                 for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))], axis=0)
        nearest = np.abs(pixels[inside][:, None] - colours[None]).sum(-1).argmin(-1) + 1
        assert inside.sum() > 20 and (nearest == labels[..., 1][inside]).all(), seed


@pytest.mark.parametrize("colour, shape", [("teal", "circle"), (None, "circle"), ("brown", None)])
def test_an_easy_vqa_map_marks_the_shapes_pixels_with_what_the_questions_tell(colour, shape):
    drawn = easy_vqa.COLOURS[colour or "teal"]
    big = Image.new("RGB", (256, 256), (240, 236, 250))
    ImageDraw.Draw(big).ellipse([40, 60, 160, 180], fill=drawn)
    pixels = np.asarray(big.resize((64, 64), Image.Resampling.BOX))
    labels = easy_vqa_label_map(pixels, colour, shape)
    mask = shape_mask(pixels, drawn).astype(bool)  # without the colour, the farthest pixel gives the same one
    assert mask.sum() > 500
    np.testing.assert_array_equal(labels[..., 0], np.where(mask, UNKNOWN if shape is None else 1, 0))
    colour_class = UNKNOWN if colour is None else REGION_COLOURS.index(colour) + 1
    np.testing.assert_array_equal(labels[..., 1], np.where(mask, colour_class, 0))
    np.testing.assert_array_equal(labels[..., 2], np.where(mask, UNKNOWN, 0))  # easy-VQA has no sizes
