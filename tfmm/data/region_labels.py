"""What each pixel of a built-in image shows: the shape, the colour and the size of the object drawn there.

The assistant's image encoder learns to tell these apart from an auxiliary target (`tfmm.models.visual_assistant.
region_loss`): captions and answers alone taught it colour but hardly shape (BENCHMARKS.md, assistant). A label map
is a PNG beside the image: red channel the shape class, green the colour class, blue the size class (0 =
background, 1 + the index in `REGION_SHAPES` / `REGION_COLOURS` / `REGION_SIZES`; `UNKNOWN` where the image's own
data do not tell, which the loss skips: easy-VQA images have no sizes).
"""

from pathlib import Path

import numpy as np
from PIL import Image

from tfmm.data import easy_vqa, shapes

REGION_SHAPES = (*shapes.SHAPES, *[s for s in easy_vqa.SHAPES if s not in shapes.SHAPES])
REGION_COLOURS = (*shapes.COLOURS, *[c for c in easy_vqa.COLOURS if c not in shapes.COLOURS])
REGION_SIZES = shapes.SIZES
REGION_CLASSES = (len(REGION_SHAPES) + 1, len(REGION_COLOURS) + 1, len(REGION_SIZES) + 1)  # per channel, with background
UNKNOWN = 255


def scene_label_map(scene, image_size):
    """uint8 (S, S, 3) of a `shapes` scene as `shapes.render` draws it (a later object over an earlier one)."""
    labels = np.zeros((image_size, image_size, 3), np.uint8)
    for obj, mask in zip(scene.objects, shapes.object_masks(scene, image_size)):
        labels[mask, 0] = REGION_SHAPES.index(obj.shape) + 1
        labels[mask, 1] = REGION_COLOURS.index(obj.colour) + 1
        labels[mask, 2] = REGION_SIZES.index(obj.size) + 1
    return labels


def easy_vqa_label_map(pixels, colour, shape):
    """uint8 (H, W, 3) of an easy-VQA image (uint8 (H, W, 3)) whose one shape is `colour` and `shape` as its
    questions tell (None where they do not: `UNKNOWN` on the shape's pixels). Without its colour the shape is
    found from the pixel farthest from the background."""
    if colour is None:
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(np.float32)
        distance = np.linalg.norm(pixels.astype(np.float32) - np.median(border, axis=0), axis=-1)
        rgb = pixels.reshape(-1, 3)[int(np.argmax(distance))]
    else:
        rgb = easy_vqa.COLOURS[colour]
    mask = easy_vqa.shape_mask(pixels, rgb).astype(bool)
    labels = np.zeros((*pixels.shape[:2], 3), np.uint8)
    labels[mask, 0] = UNKNOWN if shape is None else REGION_SHAPES.index(shape) + 1
    labels[mask, 1] = UNKNOWN if colour is None else REGION_COLOURS.index(colour) + 1
    labels[mask, 2] = UNKNOWN
    return labels


def write_label_map(labels, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(path)
    return path
