"""The built-in multimodal classification task: `shapes` images paired with noisy free-text reports.

Each report names a *target colour* (in one of several phrasings) among irrelevant sentences,
typos and sometimes a statement about the image that is wrong. The main label, `finding`, is
the shape of the leftmost object of the target colour, or `absent` when the image has no object
of that colour. The image alone does not say which colour is asked about; the report alone does
not say what the image shows: a model needs both (image-only and text-only baselines measure
how much). Two auxiliary labels describe the image alone, for multi-task training: `shape` and
`colour` of the leftmost object.
"""

import numpy as np

from tfmm.data import shapes

TASKS = {
    "finding": ("absent",) + shapes.SHAPES,
    "shape": shapes.SHAPES,
    "colour": shapes.COLOURS,
}

_TARGET = (
    "target colour: {c}.",
    "please check for a {c} object.",
    "the referring note asks about {c} findings.",
    "look for anything {c}.",
    "question from the clinic: is there something {c}?",
    "assess the {c} structures.",
)
_NOISE = (
    "the image was acquired in the afternoon.",
    "no prior studies are available for comparison.",
    "the patient is comfortable.",
    "image quality is adequate.",
    "follow-up is suggested in six weeks.",
    "the background is dark and uniform.",
    "the study was reviewed by two readers.",
    "clinical history is unremarkable.",
)
_CLAIM = "there appears to be a {c} {s}."  # true or false by chance: the image must decide


def _typo(rng, text):
    """Swaps two neighbouring letters in one word (never in a colour: the label must stay readable)."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if w.isalpha() and len(w) > 3 and w not in shapes.COLOURS]
    if candidates:
        index = candidates[int(rng.integers(len(candidates)))]
        word = words[index]
        i = int(rng.integers(len(word) - 1))
        words[index] = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return " ".join(words)


def make_report(rng, objects):
    """A report and labels for a scene given as [(colour, shape), ...] left to right."""
    colours = [c for c, _ in objects]
    if rng.random() < 0.5:
        target = colours[int(rng.integers(len(colours)))]
    else:
        absent = [c for c in shapes.COLOURS if c not in colours]
        target = absent[int(rng.integers(len(absent)))]
    finding = next((s for c, s in objects if c == target), "absent")
    sentences = [_TARGET[int(rng.integers(len(_TARGET)))].format(c=target)]
    sentences += [_NOISE[i] for i in rng.choice(len(_NOISE), size=int(rng.integers(0, 3)), replace=False)]
    if rng.random() < 0.3:
        sentences.append(_CLAIM.format(c=shapes.COLOURS[int(rng.integers(6))], s=shapes.SHAPES[int(rng.integers(5))]))
    order = rng.permutation(len(sentences))
    text = " ".join(sentences[i] for i in order)
    if rng.random() < 0.3:
        text = _typo(rng, text)
    return text, {"finding": finding, "shape": objects[0][1], "colour": objects[0][0]}


def reports_for_split(examples, split, seed=0):
    """Reports for TFDS `shapes` examples (numpy dicts); deterministic per (seed, split, index)."""
    texts, labels = [], {task: [] for task in TASKS}
    for index, example in enumerate(examples):
        objects = [(shapes.COLOURS[c], shapes.SHAPES[s]) for c, s in zip(example["objects"]["colour"], example["objects"]["shape"])]
        rng = np.random.default_rng([seed, shapes.SPLITS.index(split), index, 11])
        text, label = make_report(rng, objects)
        texts.append(text)
        for task in TASKS:
            labels[task].append(label[task])
    return texts, labels
