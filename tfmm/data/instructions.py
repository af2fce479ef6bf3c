"""The built-in visual instruction set: conversations about `shapes` scenes and easy-VQA images.

Intents (one label per assistant turn, what `eval` reports by): `describe`, `count`, `colour`, `shape`, `size`,
`relation`, `yes/no` (with negated questions, whose answers restate the fact so no convention is needed),
`absent` (a question about an object the image does not have: the answer says so), and `follow-up` (a question
that refers to the object of the turn before: "and what colour is it?"). Every intent has several phrasings;
the `heldout` ones never appear in training and make the held-out-phrasing test. Answers are short and have one
form per fact, so exact match (lower-cased, punctuation stripped) is a fair score.

The training split is drawn richer than the evaluation splits (which stay as version 3 drew them, so scores
compare across versions): longer conversations, every attribute of a named object asked equally often, twice
the relations — half of them followed by the other side of the same object, so only the side word tells the two
answers apart —, `extra` phrasings, twice the presence questions, which answer yes half the time and name one
attribute ("is there a red shape?") or a combination the scene has only apart ("a red star" beside a red circle
and a blue star), and easy-VQA questions picked so each kind of question is answered yes as often as no; and, from
version 6, 12,000 scenes (6,000 before, where the model over-fitted: training loss 0.15 against validation 0.27).
What each change measured: BENCHMARKS.md, assistant.
"""

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from tfmm.data import easy_vqa
from tfmm.data.conversations import Conversation, write_conversations
from tfmm.data.referring import unique_phrases
from tfmm.data.region_labels import easy_vqa_label_map, scene_label_map, write_label_map
from tfmm.data.shapes import COLOURS, SHAPES, render, sample_scene
from tfmm.data.shapes import SPLITS as SHAPE_SPLITS
from tfmm.errors import TfmmError

NUMBERS = ("none", "one", "two", "three", "four")
INSTRUCTION_SET_VERSION = 6  # part of the written set's folder name: bump it when what the set says changes

# {intent: {"train" | "extra" | "heldout": question templates}}. Many training phrasings, so the model learns to
# find the intent and the object in any sentence; the held-out ones are new sentences whose words training uses
# only in other sentences ("what is the number of shapes?" against "tell me the number of shapes."), not unseen
# words. The test split asks the `train` ones; the training split also the `extra` ones.
QUESTIONS = {
    "describe": {"train": ("describe the image.", "what do you see?", "describe this picture from left to right.",
                           "what is in this picture?", "tell me about the image.", "list the shapes from left to right."),
                 "extra": ("what does the picture show?", "give a description of the image.",
                           "name the shapes from left to right.", "what objects are in the image?"),
                 "heldout": ("tell me what is in the image.",)},
    "count": {"train": ("how many shapes are there?", "how many objects are in the image?", "count the shapes.",
                        "tell me the number of shapes.", "what is the number of objects in the picture?",
                        "how many things do you see?"),
              "extra": ("count the objects in the image.", "how many shapes can you count?",
                        "how many shapes does the picture have?"),
              "heldout": ("what is the number of shapes?",)},
    "colour": {"train": ("what colour is the {x}?", "which colour does the {x} have?", "tell me the colour of the {x}.",
                         "what colour does the {x} have in the picture?", "the colour of the {x} is what?"),
               "extra": ("name the colour of the {x}.", "in what colour is the {x} drawn?", "which colour is the {x}?"),
               "heldout": ("what is the colour of the {x}?",)},
    "shape": {"train": ("what shape is the {x}?", "which shape is the {x}?", "what kind of object is the {x}?",
                        "tell me the shape of the {x}.", "what is the shape of the {x} in the image?"),
              "extra": ("what shape does the {x} have?", "name the shape of the {x}.", "the {x} has which shape?"),
              "heldout": ("what kind of shape is the {x}?",)},
    "size": {"train": ("what size is the {x}?", "is the {x} small or large?", "how large is the {x}?",
                       "tell me how big the {x} is.", "is the {x} big or small?"),
             "extra": ("what is the size of the {x}?", "is the {x} large or small?", "name the size of the {x}."),
             "heldout": ("how big is the {x}?",)},
    "relation": {"train": ("what is {side} the {x}?", "which shape is {side} the {x}?", "what do you see {side} the {x}?",
                           "tell me what is {side} the {x}.", "what can be found {side} the {x}?"),
                 "extra": ("which objects are {side} the {x}?", "what lies {side} the {x}?",
                           "name what is {side} the {x}."),
                 "heldout": ("what can you see {side} the {x}?",)},
    "yes/no": {"train": ("is there a {x}?", "does the image contain a {x}?", "do you see a {x}?", "can you find a {x}?",
                         "is there a {x} in the picture?"),
               "extra": ("is a {x} present?", "is there any {x}?", "does the picture contain a {x}?"),
               "heldout": ("can you see a {x}?",)},
    "negated": {"train": ("is there no {x}?", "is there not a {x}?", "is the picture without any {x}?",
                          "does the image have no {x}?"),
                "extra": ("does the picture not contain a {x}?", "is no {x} present?"),
                "heldout": ("is the image without a {x}?",)},
    "follow-up": {"train": ("and what {attribute} is it?", "what {attribute} is it?", "and what is its {attribute}?",
                            "what about its {attribute}?"),
                  "extra": ("what is its {attribute}?", "tell me its {attribute}.", "and which {attribute} is it?"),
                  "heldout": ("and its {attribute}?",)},
}


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _ask(intent, rng, phrasing, **words):
    """A question of `intent` in one of its `phrasing` templates ("training": "train" or "extra")."""
    sets = QUESTIONS[intent]
    templates = sets["train"] + sets["extra"] if phrasing == "training" else sets[phrasing]
    return _pick(rng, templates).format(**words)


def _listing(objects):
    names = [o.phrase() for o in objects]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _things_without(obj, attribute, scene):
    """The phrases that name `obj` uniquely in `scene` without telling its `attribute` ("red shape" said as
    "red object", so "what shape is the red object?")."""
    phrases = [p for p in unique_phrases(scene, obj) if getattr(obj, attribute) not in p.split()]
    return [p[:-len("shape")] + "object" if p.endswith(" shape") else p for p in phrases]


def _about_object(scene, rng, phrasing):
    """(question, answer, intent, object index) about one attribute of one object, or None where no phrase
    names the object without giving the answer away. Evaluation splits pick among every (attribute, phrase) pair,
    which asks the size most (more phrases leave it out); training picks the attribute first."""
    index = int(rng.integers(len(scene.objects)))
    obj = scene.objects[index]
    choices = [(attribute, thing) for attribute in ("colour", "shape", "size")
               for thing in _things_without(obj, attribute, scene)]
    if not choices:
        return None
    if phrasing == "training":
        attribute = _pick(rng, sorted({a for a, _ in choices}))
        choices = [c for c in choices if c[0] == attribute]
    attribute, thing = _pick(rng, choices)
    return _ask(attribute, rng, phrasing, x=thing), getattr(obj, attribute), attribute, index


def _relation(scene, rng, phrasing):
    """What is left or right of a named object; training asks the other side of the same object next half the
    time, so the side word is what tells the two answers apart (one side is often "nothing")."""
    index = int(rng.integers(len(scene.objects)))
    phrases = unique_phrases(scene, scene.objects[index])
    if not phrases:
        return None
    side = _pick(rng, ("left of", "right of"))
    thing = _pick(rng, phrases)

    def ask(side):
        others = scene.objects[:index] if side == "left of" else scene.objects[index + 1:]
        answer = _listing(others) if others else "nothing"
        return _ask("relation", rng, phrasing, side=side, x=thing), answer, "relation", None

    if phrasing == "training" and rng.random() < 0.5:
        return [ask(side), ask("right of" if side == "left of" else "left of")]
    return ask(side)


def _presence(scene, rng, phrasing):
    if phrasing == "training":
        return _balanced_presence(scene, rng, phrasing)
    if rng.random() < 0.5:
        obj = _pick(rng, scene.objects)
        colour, shape = obj.colour, obj.shape
    else:
        colour, shape = _pick(rng, COLOURS), _pick(rng, SHAPES)
    there = any((o.colour, o.shape) == (colour, shape) for o in scene.objects)
    return _is_there(f"{colour} {shape}", there, rng, phrasing)


def _is_there(thing, there, rng, phrasing):
    """A yes/no turn about `thing`, asked plainly or negated half the time each."""
    if rng.random() < 0.5:
        return _ask("yes/no", rng, phrasing, x=thing), "yes" if there else "no", "yes/no", None
    answer = f"no, there is a {thing}" if there else f"yes, there is no {thing}"
    return _ask("negated", rng, phrasing, x=thing), answer, "yes/no", None


def _balanced_presence(scene, rng, phrasing):
    """Training's presence question: yes half the time; about a colour ("red shape"), a shape, or a colour–shape
    pair, a missing pair preferably one whose colour and shape the scene has apart, so the answer needs both."""
    there, form = rng.random() < 0.5, _pick(rng, ("pair", "pair", "colour", "shape"))
    has = {(o.colour, o.shape) for o in scene.objects}
    if form == "pair":
        pairs = sorted(has) if there else [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in has]
        colours, shapes = {o.colour for o in scene.objects}, {o.shape for o in scene.objects}
        apart = [(c, s) for c, s in pairs if c in colours and s in shapes]
        colour, shape = _pick(rng, apart if apart and not there else pairs)
        thing = f"{colour} {shape}"
    elif form == "colour":
        thing = f"{_pick(rng, [c for c in COLOURS if any(o.colour == c for o in scene.objects) == there])} shape"
    else:
        thing = _pick(rng, [s for s in SHAPES if any(o.shape == s for o in scene.objects) == there])
    return _is_there(thing, there, rng, phrasing)


def _absent(scene, rng, phrasing):
    missing = [s for s in SHAPES if all(o.shape != s for o in scene.objects)]
    shape = _pick(rng, missing)
    attribute = _pick(rng, ("colour", "size"))
    return _ask(attribute, rng, phrasing, x=shape), f"there is no {shape}", "absent", None


def _overview(scene, rng, phrasing):
    if rng.random() < 0.5:
        return _ask("describe", rng, phrasing), _listing(scene.objects), "describe", None
    return _ask("count", rng, phrasing), NUMBERS[len(scene.objects)], "count", None


_MAKERS = (_about_object, _about_object, _relation, _presence, _absent)
_TRAINING_MAKERS = (_about_object, _about_object, _relation, _relation, _presence, _presence, _absent)
TURNS = (2, 4)  # turns per conversation, fewest and most, evaluation splits
TRAINING_TURNS = (3, 5)  # training: most fit the context of 72 word positions


def _follow_up(scene, index, asked, rng, phrasing):
    """A question about the object of the last turn ("and what size is it?") that the last turn did not answer."""
    attribute = _pick(rng, [a for a in ("colour", "shape", "size") if a != asked])
    return _ask("follow-up", rng, phrasing, attribute=attribute), getattr(scene.objects[index], attribute), "follow-up", index


def scene_conversation(scene, rng, phrasing="train", turns=3):
    """((question, answer), ...) and their intents: an overview first (describe or count), then questions of the
    other intents, each object question followed by a follow-up about the same object half the time. `phrasing`:
    "train" or "heldout" templates, or "training" (the training split's richer draw, see the module's doc)."""
    made = [_overview(scene, rng, phrasing)]
    for _ in range(20 * turns):  # a repeated or impossible question is drawn again
        if len(made) == turns:
            break
        last = made[-1]
        if last[3] is not None and last[2] != "follow-up" and rng.random() < 0.5:
            made.append(_follow_up(scene, last[3], last[2], rng, phrasing))
            continue
        drawn = _pick(rng, _TRAINING_MAKERS if phrasing == "training" else _MAKERS)(scene, rng, phrasing)
        drawn = [drawn] if isinstance(drawn, tuple) else drawn or []  # a maker may give a pair of turns
        if drawn and not {q for q, *_ in drawn} & {q for q, *_ in made}:
            made.extend(drawn[:turns - len(made)])
    return tuple((q, a) for q, a, _, _ in made), tuple(intent for _, _, intent, _ in made)


def easy_vqa_conversation(questions, answers, rng, turns=3, weights=None):
    """Up to `turns` of an easy-VQA image's own questions as one conversation, intents from the answers; with
    `weights` (one per question), drawn in proportion to them."""
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    order = rng.choice(len(questions), size=min(turns, len(questions)), replace=False, p=p)
    pairs = tuple((questions[i], answers[i]) for i in order)
    return pairs, tuple(easy_vqa.question_type(a) for _, a in pairs)


def normalise_answer(text):
    """What exact match compares: lower case, punctuation stripped, spaces collapsed."""
    kept = "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower())
    return " ".join(kept.split())


# Built-in splits: {name: (image source, its split, phrasing — "training" is the training split's draw —, shapes
# conversations by default)}. "phrasing" asks about test scenes with the held-out phrasings; "easy_vqa_test" is the
# official easy-VQA test split, one question per conversation (easy-VQA splits take every image, so they have no
# count). "captions" is one "describe" turn per training scene: the data of the assistant's alignment stage.
SPLITS = {"train": ("shapes", "train", "training", 12000), "validation": ("shapes", "validation", "train", 300),
          "test": ("shapes", "test", "train", 600), "phrasing": ("shapes", "test", "heldout", 600),
          "captions": ("shapes", "train", "train", 3000),
          "easy_vqa_train": ("easy_vqa", "train", "train", None), "easy_vqa_test": ("easy_vqa", "test", "train", None)}


def _shapes_conversations(folder, split, count, seed, image_size):
    _, scene_split, phrasing, _ = SPLITS[split]
    made = []
    for index in range(count):
        rng = np.random.default_rng([seed, list(SPLITS).index(split), SHAPE_SPLITS.index(scene_split), index])
        scene = sample_scene(rng, image_size, scene_split)
        path = folder / "images" / split / f"{index}.png"
        Image.fromarray(render(scene, image_size, rng)).save(path)
        labels = write_label_map(scene_label_map(scene, image_size), folder / "labels" / split / f"{index}.png")
        if split == "captions":
            turns, intents = ((_ask("describe", rng, phrasing), _listing(scene.objects)),), ("describe",)
        else:
            fewest, most = TRAINING_TURNS if phrasing == "training" else TURNS
            turns, intents = scene_conversation(scene, rng, phrasing, turns=int(rng.integers(fewest, most + 1)))
        made.append(Conversation(f"{split}-{index}", path, turns, intents, labels))
    return made


EASY_VQA_TRAINING_TURNS = 4


def _answer_balancing_weights(groups):
    """A weight per question of every image: N(kind) / (N(kind, answer) · answers of the kind), so each kind of
    question (`easy_vqa.question_kind`) keeps its share while its answers become equally likely. easy-VQA asks
    "is there a red shape?" of images whose shape is red 12 % of the time; drawn as they come, a model learns to
    answer no without looking."""
    classes = [[(easy_vqa.question_kind(q), a) for q, a in zip(g["questions"], g["answers"])] for g in groups]
    counts = Counter(c for image in classes for c in image)
    kinds = Counter(kind for kind, _ in counts.elements())
    answers = Counter(kind for kind, _ in counts)
    return [[kinds[kind] / (counts[(kind, a)] * answers[kind]) for kind, a in image] for image in classes]


def _easy_vqa_conversations(folder, split, seed):
    """Official easy-VQA images (copied, so the folder stands alone): training images as conversations of up to
    `EASY_VQA_TRAINING_TURNS` of their questions drawn with answer-balancing weights, with label maps; test
    images one question per conversation (every official test question is scored)."""
    groups, _ = easy_vqa.read_directory(easy_vqa.package_directory(SPLITS[split][1]))
    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    weights = _answer_balancing_weights(groups) if split == "easy_vqa_train" else None
    made = []
    for number, group in enumerate(groups):
        image = folder / "images" / split / f"{group['image_id']}.png"
        shutil.copyfile(group["image_path"], image)
        if split == "easy_vqa_train":
            turns, intents = easy_vqa_conversation(group["questions"], group["answers"], rng, EASY_VQA_TRAINING_TURNS,
                                                   weights[number])
            with Image.open(image) as opened:
                pixels = np.asarray(opened.convert("RGB"))
            colour, shape = easy_vqa.scene_from_questions(group["questions"], group["answers"])
            labels = write_label_map(easy_vqa_label_map(pixels, colour, shape),
                                     folder / "labels" / split / f"{group['image_id']}.png")
            made.append(Conversation(f"{split}-{group['image_id']}", image, turns, intents, labels))
            continue
        for number, (question, answer) in enumerate(zip(group["questions"], group["answers"])):
            made.append(Conversation(f"{split}-{group['image_id']}-{number}", image, ((question, answer),),
                                     (easy_vqa.question_type(answer),)))
    return made


def build_instruction_set(folder, splits=tuple(SPLITS), sizes=None, seed=0, image_size=64):
    """Writes the built-in instruction set to `folder` in LLaVA's format: `<split>.json` per split, images under
    `images/<split>/`, label maps (`tfmm.data.region_labels`) of the shapes scenes and easy-VQA training images
    under `labels/<split>/`. `sizes` overrides the number of conversations of shapes splits. Returns {split:
    path}."""
    sizes = sizes or {}
    for split in [*splits, *sizes]:
        if split not in SPLITS:
            raise TfmmError(f"unknown instruction split {split!r}; the built-in ones are {list(SPLITS)}")
        if split in sizes and SPLITS[split][3] is None:
            raise TfmmError(f"instruction split {split!r} takes every easy-VQA image; it has no size to set")
    folder = Path(folder)
    written = {}
    for split in splits:
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        if SPLITS[split][0] == "easy_vqa":
            conversations = _easy_vqa_conversations(folder, split, seed)
        else:
            count = sizes.get(split, SPLITS[split][3])
            conversations = _shapes_conversations(folder, split, count, seed, image_size)
        written[split] = write_conversations(conversations, folder / f"{split}.json")
    return written
