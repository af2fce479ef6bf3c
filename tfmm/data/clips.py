"""The built-in video QA clips: short clips of moving shapes with questions about them.

Each clip shows two objects from the `shapes` vocabulary: one moves in a straight line
(left, right, up or down), the other stands still. Questions ask for the moving object's
colour and shape, the direction a named object moves in, and whether a named object moves.
Clips are generated from a seed in memory (a few seconds), so every machine sees the same ones.
"""

import numpy as np

from tfmm.data import shapes

DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SIZES = {"tiny": (64, 16, 32), "small": (1200, 200, 300), "default": (3000, 300, 500)}  # train, validation, test clips
SPLITS = ("train", "validation", "test")


def _objects(rng):
    first = (shapes.COLOURS[rng.integers(6)], shapes.SHAPES[rng.integers(5)])
    while True:
        second = (shapes.COLOURS[rng.integers(6)], shapes.SHAPES[rng.integers(5)])
        if second[0] != first[0] and second[1] != first[1]:
            return first, second


def _render_frame(placed, image_size, rng):
    scene = shapes.Scene(tuple(obj for obj, _ in placed))
    object.__setattr__(scene, "objects_with_radius", tuple(placed))
    return shapes.render(scene, image_size, rng)


def generate_clip(rng, frames, image_size):
    """One clip → (uint8 (frames, S, S, 3), [(question, answer, type)])."""
    (mover_colour, mover_shape), (still_colour, still_shape) = _objects(rng)
    direction = list(DIRECTIONS)[rng.integers(4)]
    dx, dy = DIRECTIONS[direction]
    radius = 0.13 * image_size
    travel = 0.45  # share of the image the mover crosses
    margin = 0.2
    start = rng.uniform(margin, 1 - margin, size=2)
    along = rng.uniform(margin, 1 - margin - travel)
    if dx:
        start[0] = along if dx > 0 else 1 - along
    else:
        start[1] = along if dy > 0 else 1 - along
    while True:  # the still object keeps clear of the mover's whole path
        still = rng.uniform(margin, 1 - margin, size=2)
        path = [start + np.array([dx, dy]) * travel * t / (frames - 1) for t in range(frames)]
        if min(np.linalg.norm(still - p) for p in path) > 0.3:
            break
    clip = []
    for position in path:
        placed = [
            (shapes.ShapeObject(mover_shape, mover_colour, "large", float(position[0]), float(position[1])), radius),
            (shapes.ShapeObject(still_shape, still_colour, "large", float(still[0]), float(still[1])), radius),
        ]
        clip.append(_render_frame(placed, image_size, rng))
    qa = [
        ("what colour is the moving shape?", mover_colour, "colour"),
        ("what shape is moving?", mover_shape, "shape"),
        (f"which way is the {mover_colour} {mover_shape} moving?", direction, "direction"),
        (f"which way is the {mover_shape} moving?", direction, "direction"),
        (f"is the {mover_colour} {mover_shape} moving?", "yes", "yes/no"),
        (f"is the {still_colour} {still_shape} moving?", "no", "yes/no"),
    ]
    return np.stack(clip), qa


def generate_split(split, size="default", frames=6, image_size=32, seed=0):
    """All clips of a split: uint8 (n, frames, S, S, 3) and a list of question lists."""
    if size not in SIZES:
        raise ValueError(f"unknown clips size {size!r}; valid: {', '.join(SIZES)}")
    count = SIZES[size][SPLITS.index(split)]
    rng = np.random.default_rng([seed, SPLITS.index(split), 7])
    clips, questions = [], []
    for _ in range(count):
        clip, qa = generate_clip(rng, frames, image_size)
        clips.append(clip)
        questions.append(qa)
    return np.stack(clips), questions
