"""easy-VQA: the real dataset shipped in the `easy-vqa` PyPI package, its directory layout, and a
generator of fresh data in the same style.

Layout of a split directory (the package's own, and what users may bring):

    DIR/images/<image id>.png
    DIR/questions.json      [[question, answer, image id], ...]
    DIR/answers.txt         optional: one answer per line (else the model's own vocabulary is used)

A dataset root may instead hold `train/` and `test/` split directories (as the package does).

Images show one shape (circle, rectangle, triangle) in one of eight colours on a light
background. The generator draws the same kind of scene and asks the same forms of question,
so a model trained on the official data can be checked on data it has never seen.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tfmm.data.readers import read_json_file
from tfmm.errors import TfmmError

SHAPES = ("circle", "rectangle", "triangle")
COLOURS = {
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
    "teal": (0, 128, 128), "brown": (165, 42, 42), "gray": (128, 128, 128), "black": (0, 0, 0),
}
ANSWERS = ("yes", "no") + SHAPES + tuple(COLOURS)

_SHAPE_QUESTIONS = ("what shape is in the image?", "what shape does the image contain?", "what shape is present?",
                    "what is the {colour} shape?")
_COLOUR_QUESTIONS = ("what color is the shape?", "what is the color of the shape?", "what color is the {shape}?",
                     "what is the color of the {shape}?")
_PRESENCE = ("is there a {x}?", "is there a {x} in the image?", "does the image contain a {x}?", "is a {x} present?")
_ABSENCE = ("is there not a {x}?", "is there not a {x} in the image?", "does the image not contain a {x}?",
            "is no {x} present?")


def shape_mask(pixels, colour):
    """uint8 (H, W) 0/1: the pixels of `pixels` (uint8 (H, W, 3)) nearer `colour` (RGB) than the background (the
    median of the border pixels; every easy-VQA shape lies whole inside its image)."""
    pixels = pixels.astype(np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    direction = np.asarray(colour, np.float32) - background
    share = (pixels - background) @ direction / max(float(direction @ direction), 1e-6)
    return (share > 0.5).astype(np.uint8)


def package_directory(split):
    """The official split directory inside the installed `easy-vqa` package."""
    try:
        import easy_vqa
    except ImportError:
        raise TfmmError("data.source easy_vqa needs the easy-vqa package: pip install easy-vqa") from None
    if split not in ("train", "test"):
        raise TfmmError(f"easy-VQA has the official splits train and test, not {split!r}")
    return Path(easy_vqa.__file__).parent / "data" / split


def question_type(answer):
    """easy-VQA's questions carry no type; the answer tells it: colour, shape, yes/no, or other."""
    if answer in ("yes", "no"):
        return "yes/no"
    if answer in COLOURS:
        return "colour"
    if answer in SHAPES:
        return "shape"
    return "other"


def read_directory(path):
    """Reads one split directory → list of `{"image_id", "image_path", "questions", "answers"}` per image,
    in image-id order, plus the directory's `answers.txt` list (or None)."""
    path = Path(path)
    questions_file = path / "questions.json"
    if not path.is_dir():
        raise TfmmError(f"VQA data directory not found: {path}")
    if not questions_file.is_file():
        raise TfmmError(f"{path} is not a VQA directory: questions.json is missing (expected images/*.png + questions.json)")
    rows = read_json_file(questions_file)
    if not isinstance(rows, list):
        raise TfmmError(f"{questions_file}: expected a list of [question, answer, image id]")
    groups = {}
    for index, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and isinstance(row[1], str)):
            raise TfmmError(f"{questions_file}: entry #{index} {row!r} is not [question, answer, image id]")
        question, answer, image_id = row
        group = groups.setdefault(str(image_id), {"image_id": str(image_id), "questions": [], "answers": []})
        group["questions"].append(question)
        group["answers"].append(answer)
    for group in groups.values():
        group["image_path"] = str(path / "images" / f"{group['image_id']}.png")
    answers_file = path / "answers.txt"
    answers = None
    if answers_file.is_file():
        answers = [line.strip() for line in answers_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    order = sorted(groups, key=lambda k: (len(k), k))  # numeric ids in numeric order
    return [groups[k] for k in order], answers


def _asked_thing(question):
    """("yes means present" flag, the thing asked about) of a presence/absence question, else None."""
    for templates, negated in ((_PRESENCE, False), (_ABSENCE, True)):
        for template in templates:
            before, after = template.split("{x}")
            if question.startswith(before) and question.endswith(after):
                return negated, question[len(before):len(question) - len(after)]
    return None


def question_kind(question):
    """What a question asks, for balancing answers: "colour" or "shape" of the shape, or whether it has a colour
    / a shape ("presence of a colour", negated or not; "presence of a shape"); a question in no known template is
    its own kind."""
    asked = _asked_thing(question)
    if asked is not None:
        negated, thing = asked
        return ("absence" if negated else "presence") + (" of a colour" if thing.endswith(" shape") else " of a shape")
    if question in _COLOUR_QUESTIONS or _template_fill(question, _COLOUR_QUESTIONS, "shape"):
        return "colour"  # before the shape templates: "what is the {colour} shape?" also fits "what is the color of the shape?"
    if question in _SHAPE_QUESTIONS or _template_fill(question, _SHAPE_QUESTIONS, "colour"):
        return "shape"
    return question


def _template_fill(question, templates, field):
    """The word a question fills into `{field}` of one of `templates`, or None."""
    for template in templates:
        if "{" + field + "}" not in template:
            continue
        before, after = template.split("{" + field + "}")
        if question.startswith(before) and question.endswith(after) and len(question) > len(before) + len(after):
            return question[len(before):len(question) - len(after)]
    return None


def scene_from_questions(questions, answers):
    """(colour, shape) of an image, read from its questions and answers (None where they do not tell):
    the answers to colour and shape questions, the words inside them ("what is the red shape?"),
    yes/no answers about presence, and elimination (every other shape said to be absent)."""
    colours, shapes = set(), set()
    absent_colours, absent_shapes = set(), set()
    for question, answer in zip(questions, answers):
        kind = question_type(answer)
        if kind == "colour":
            colours.add(answer)
            shapes.add(_template_fill(question, _COLOUR_QUESTIONS, "shape"))
        elif kind == "shape":
            shapes.add(answer)
            colours.add(_template_fill(question, _SHAPE_QUESTIONS, "colour"))
        elif kind == "yes/no" and (asked := _asked_thing(question)) is not None:
            negated, thing = asked
            present = (answer == "yes") != negated
            colour = thing[: -len(" shape")] if thing.endswith(" shape") else None
            if thing in SHAPES:
                (shapes if present else absent_shapes).add(thing)
            elif colour in COLOURS:
                (colours if present else absent_colours).add(colour)
    colours &= set(COLOURS)  # drops None, and "shape" read from "what color is the shape?"
    shapes &= set(SHAPES)
    if not colours and len(absent_colours) == len(COLOURS) - 1:
        colours = set(COLOURS) - absent_colours
    if not shapes and len(absent_shapes) == len(SHAPES) - 1:
        shapes = set(SHAPES) - absent_shapes
    return (colours.pop() if len(colours) == 1 else None), (shapes.pop() if len(shapes) == 1 else None)


def _draw(rng, image_size):
    """One shape on a light background. Sizes and placement follow the official images (measured:
    extents 9–34 px at 64 px, rectangles' sides drawn separately from 10 px up, every shape whole
    inside the image), drawn 4× larger and box-downsampled: their edges are anti-aliased."""
    scale = image_size / 64
    background = tuple(int(v) for v in rng.integers(230, 256, size=3))
    image = Image.new("RGB", (image_size * 4, image_size * 4), background)
    draw = ImageDraw.Draw(image)
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    fill = COLOURS[colour]
    if shape == "rectangle":
        width, height = (int(v) for v in rng.integers(round(10 * scale), round(33 * scale) + 1, size=2))
    else:
        width = height = int(rng.integers(round(9 * scale), round(34 * scale) + 1))
    x0 = int(rng.integers(0, image_size - width))
    y0 = int(rng.integers(0, image_size - height))
    box = [4 * v for v in (x0, y0, x0 + width, y0 + height)]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "rectangle":
        draw.rectangle(box, fill=fill)
    else:
        left, top, right, bottom = box
        draw.polygon([((left + right) / 2, top), (left, top + (bottom - top) * 0.87), (right, top + (bottom - top) * 0.87)],
                     fill=fill)
    return image.resize((image_size, image_size), Image.Resampling.BOX), shape, colour


def _questions(rng, shape, colour):
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    qa = [(pick(_SHAPE_QUESTIONS).format(colour=colour), shape), (pick(_COLOUR_QUESTIONS).format(shape=shape), colour)]
    for _ in range(int(rng.integers(2, 9))):
        if rng.random() < 0.5:
            thing = pick(SHAPES)
            present = thing == shape
        else:
            other = pick(list(COLOURS))
            thing, present = f"{other} shape", other == colour
        negated = rng.random() < 0.5
        template = pick(_ABSENCE if negated else _PRESENCE)
        qa.append((template.format(x=thing), "yes" if present != negated else "no"))
    return qa


def generate(directory, count, seed=0, image_size=64):
    """Writes `count` fresh easy-VQA-style images and their questions in the easy-VQA layout."""
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for image_id in range(count):
        image, shape, colour = _draw(rng, image_size)
        image.save(directory / "images" / f"{image_id}.png")
        rows.extend([question, answer, image_id] for question, answer in _questions(rng, shape, colour))
    (directory / "questions.json").write_text(json.dumps(rows))
    (directory / "answers.txt").write_text("\n".join(ANSWERS) + "\n")
    return directory
