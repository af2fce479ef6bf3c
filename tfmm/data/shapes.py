"""The built-in `shapes` scenes: procedural images with captions, questions and labels.

Each scene has 1–3 objects, each with a shape, a colour, a size and a position.
Everything is derived from a seed, so a split is the same on every machine.
Captions always pin down the scene completely (objects listed by their left-to-right
order), so a caption retrieves exactly the images whose `scene` key it describes.

Some colour–shape combinations never appear in the train/validation/test splits;
the `heldout` split shows only those, for zero-shot tests.
"""

import dataclasses
import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple", "white")
SIZES = ("small", "large")
RGB = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 210),
    "white": (235, 235, 235),
}
# Never seen in training: one combination per shape, each colour at most once.
HELDOUT_COMBINATIONS = (
    ("red", "star"),
    ("green", "triangle"),
    ("blue", "cross"),
    ("yellow", "circle"),
    ("purple", "square"),
)
COMBINATIONS = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)  # class names, label = index

SPLITS = ("train", "validation", "test", "heldout")


@dataclasses.dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str
    x: float  # centre, as a fraction of the image width
    y: float

    def phrase(self, article=True):
        words = f"{self.size} {self.colour} {self.shape}"
        return f"a {words}" if article else words


@dataclasses.dataclass(frozen=True)
class Scene:
    objects: tuple  # sorted left to right

    @property
    def key(self):
        """Identifies what captions can tell apart: the objects in left-to-right order."""
        return "|".join(o.phrase(article=False) for o in self.objects)

    @property
    def label(self):
        """Class label: the colour–shape combination of the leftmost object."""
        first = self.objects[0]
        return COMBINATIONS.index(f"{first.colour} {first.shape}")


def _radius(size, image_size, rng):
    base = (0.10, 0.19)[SIZES.index(size)] * image_size
    return base * rng.uniform(0.9, 1.1)


def _polygon(shape, cx, cy, r, angle):
    if shape == "square":
        k, radii = 4, [r * 0.95] * 4
        angle += math.pi / 4
    elif shape == "triangle":
        k, radii = 3, [r * 1.1] * 3
        angle -= math.pi / 2
    elif shape == "star":
        k, radii = 10, [r * 1.15 if i % 2 == 0 else r * 0.5 for i in range(10)]
        angle -= math.pi / 2
    elif shape == "cross":
        w = r * 0.38
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
        return [(cx + px, cy + py) for px, py in pts]
    else:
        raise ValueError(shape)
    return [
        (cx + radii[i] * math.cos(angle + 2 * math.pi * i / k), cy + radii[i] * math.sin(angle + 2 * math.pi * i / k))
        for i in range(k)
    ]


def render(scene, image_size, rng):
    """Draws a scene on a dark, slightly noisy background; returns uint8 (H, W, 3)."""
    scale = 4  # draw large and downsample for anti-aliased edges
    big = image_size * scale
    background = tuple(int(v) for v in rng.integers(0, 40, size=3))
    image = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(image)
    for obj, radius in scene.objects_with_radius:
        colour = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in RGB[obj.colour])
        _draw(draw, obj, radius, scale, colour)
    image = image.resize((image_size, image_size), Image.Resampling.BOX)
    pixels = np.asarray(image, dtype=np.int16)
    pixels = pixels + rng.integers(-6, 7, size=pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _draw(draw, obj, radius, scale, fill):
    cx, cy, r = obj.x * draw.im.size[0], obj.y * draw.im.size[1], radius * scale
    if obj.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon(_polygon(obj.shape, cx, cy, r, 0.0), fill=fill)


def object_masks(scene, image_size):
    """One bool mask (H, W) per object of `scene` (as `render` drew it): the pixels more than half covered
    by that object, later objects drawn over earlier ones, as in the image."""
    scale = 4
    canvas = Image.new("L", (image_size * scale, image_size * scale), 0)
    draw = ImageDraw.Draw(canvas)
    for index, (obj, radius) in enumerate(scene.objects_with_radius, start=1):
        _draw(draw, obj, radius, scale, index)
    owner = np.asarray(canvas).reshape(image_size, scale, image_size, scale)
    return [(owner == index).mean(axis=(1, 3)) > 0.5 for index in range(1, len(scene.objects) + 1)]


def _allowed(colour, shape, split):
    heldout = (colour, shape) in HELDOUT_COMBINATIONS
    return heldout if split == "heldout" else not heldout


def sample_scene(rng, image_size, split):
    """Samples 1–3 non-overlapping objects whose centres are well apart left to right."""
    count = 1 if split == "heldout" else int(rng.choice([1, 2, 3], p=[0.3, 0.35, 0.35]))
    while True:
        placed = []
        for _ in range(count):
            while True:
                colour, shape = COLOURS[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))]
                if _allowed(colour, shape, split):
                    break
            size = SIZES[rng.integers(len(SIZES))]
            radius = _radius(size, image_size, rng)
            margin = radius * 1.2 / image_size
            x, y = rng.uniform(margin, 1 - margin, size=2)
            placed.append((ShapeObject(shape, colour, size, float(x), float(y)), radius))
        placed.sort(key=lambda p: p[0].x)
        xs = [p[0].x * image_size for p in placed]
        apart = all(b - a >= 0.6 * (ra + rb) for (a, (_, ra)), (b, (_, rb)) in zip(zip(xs, placed), zip(xs[1:], placed[1:])))
        if apart:
            scene = Scene(tuple(p[0] for p in placed))
            object.__setattr__(scene, "objects_with_radius", tuple(placed))
            return scene


_ONE = (
    "{a}",
    "a picture of {a}",
    "there is {a}",
    "{a} on a dark background",
    "an image showing {a}",
    "just {a}",
)
_TWO = (
    "{a} left of {b}",
    "{b} right of {a}",
    "{a} to the left of {b}",
    "{b} to the right of {a}",
    "{a} and {b} from left to right",
    "on the left {a}, on the right {b}",
    "{a} next to {b} on its right",
)
_THREE = (
    "{a}, {b} and {c} from left to right",
    "from left to right: {a}, {b}, {c}",
    "{a} left of {b}, which is left of {c}",
    "{c} right of {b}, which is right of {a}",
    "three shapes: {a} on the left, {b} in the middle and {c} on the right",
    "{b} between {a} on the left and {c} on the right",
)


def captions(scene, rng, count=5):
    """`count` different phrasings, each naming every object in its left-to-right place."""
    templates = (_ONE, _TWO, _THREE)[len(scene.objects) - 1]
    chosen = rng.choice(len(templates), size=min(count, len(templates)), replace=False)
    names = dict(zip("abc", (o.phrase() for o in scene.objects)))
    return [templates[i].format(**names) for i in chosen]


def questions(scene, rng):
    """Question/answer pairs with their type: colour, shape, yes/no, count, size."""
    qa = []
    objs = scene.objects
    shapes = [o.shape for o in objs]
    colours = [o.colour for o in objs]
    for o in objs:
        if shapes.count(o.shape) == 1:
            qa.append((f"what colour is the {o.shape}?", o.colour, "colour"))
        if colours.count(o.colour) == 1:
            qa.append((f"what shape is the {o.colour} object?", o.shape, "shape"))
            qa.append((f"what size is the {o.colour} {o.shape}?", o.size, "size"))
    present = {(o.colour, o.shape) for o in objs}
    colour, shape = COLOURS[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))]
    qa.append((f"is there a {colour} {shape}?", "yes" if (colour, shape) in present else "no", "yes/no"))
    o = objs[rng.integers(len(objs))]
    qa.append((f"is there a {o.colour} {o.shape}?", "yes", "yes/no"))
    qa.append(("how many shapes are there?", str(len(objs)), "count"))
    return qa


def generate_example(seed, split, index, image_size=64):
    """One example as plain Python/NumPy values; the same (seed, split, index) gives the same example."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    scene = sample_scene(rng, image_size, split)
    image = render(scene, image_size, rng)
    qa = questions(scene, rng)
    return {
        "id": f"{split}-{index:06d}",
        "image": image,
        "captions": captions(scene, rng),
        "scene": scene.key,
        "label": scene.label,
        "objects": {
            "shape": [o.shape for o in scene.objects],
            "colour": [o.colour for o in scene.objects],
            "size": [o.size for o in scene.objects],
            "x": [o.x for o in scene.objects],
            "y": [o.y for o in scene.objects],
        },
        "questions": {
            "question": [q for q, _, _ in qa],
            "answer": [a for _, a, _ in qa],
            "type": [t for _, _, t in qa],
        },
    }
