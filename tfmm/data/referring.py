"""Referring expressions for `shapes` scenes, with the mask each one names (the segment app's built-in data).

Four kinds, each drawn only where it is true of the scene:
- `attribute`: one object, named by attributes that fit it alone ("the red circle", "the large star",
  "the blue shape", "the triangle");
- `relation`: one object, named by where it is from another that is named by its attributes ("the object
  left of the blue square");
- `multiple`: every object sharing an attribute ("all green objects", "all the circles");
- `no_target`: attributes no object in the scene has ("the purple star" where there is none): an empty mask.

Each kind has training phrasings and held-out ones (`phrasing="heldout"`), so a test can ask in words the model
never read. Everything derives from the caller's generator, as the rest of `shapes` does.
"""

import numpy as np

from tfmm.data.region_labels import scene_label_map
from tfmm.data.shapes import COLOURS, HELDOUT_COMBINATIONS, SHAPES, SIZES, object_masks

KINDS = ("attribute", "relation", "multiple", "no_target")

# {kind: {"train" | "heldout": templates}}; "{}" is the noun phrase ("red circle", "object left of the red circle").
# Many training phrasings, so the model learns to read the noun phrase whatever surrounds it; the held-out ones
# are new sentences whose words training uses only in other sentences ("where is the red circle" against
# "where is the red circle in the picture"), not words it never read.
PHRASINGS = {
    "single": {"train": ("the {}", "{}", "the {} in the picture", "find the {}", "show the {}", "show me the {} in the image",
                         "where is the {} in the picture", "segment the {} in the image", "mark the {}", "highlight the {}",
                         "locate the {}", "select the {} in the picture", "point to the {}", "the {} in the image"),
               "heldout": ("where is the {}", "segment the {}")},
    "multiple": {"train": ("all {}", "all the {}", "all {} in the picture", "all of the {}", "every one of the {}",
                           "mark all the {} in the image", "show all {}", "find all the {}", "highlight all {}",
                           "segment all the {}", "where are the {}", "select each one of the {} in the picture"),
                 "heldout": ("each of the {}", "mark all {}")},
}
_PLURAL = {"cross": "crosses"}


def _plural(shape):
    return _PLURAL.get(shape, shape + "s")


def _descriptors(obj):
    """The attribute phrases that fit `obj`, most specific first, as (phrase, predicate)."""
    return [
        (f"{obj.size} {obj.colour} {obj.shape}", lambda o: (o.size, o.colour, o.shape) == (obj.size, obj.colour, obj.shape)),
        (f"{obj.colour} {obj.shape}", lambda o: (o.colour, o.shape) == (obj.colour, obj.shape)),
        (f"{obj.size} {obj.shape}", lambda o: (o.size, o.shape) == (obj.size, obj.shape)),
        (f"{obj.colour} shape", lambda o: o.colour == obj.colour),
        (f"{obj.colour} object", lambda o: o.colour == obj.colour),
        (obj.shape, lambda o: o.shape == obj.shape),
    ]


def unique_phrases(scene, obj):
    return [phrase for phrase, fits in _descriptors(obj) if sum(fits(o) for o in scene.objects) == 1]


def _attribute(scene, rng):
    for target in rng.permutation(len(scene.objects)):  # an object no attribute singles out is skipped
        phrases = unique_phrases(scene, scene.objects[target])
        if phrases:
            return str(rng.choice(phrases)), [int(target)]
    return None


def _relation(scene, rng):
    if len(scene.objects) < 2:
        return None
    anchor = int(rng.integers(len(scene.objects)))
    phrases = unique_phrases(scene, scene.objects[anchor])
    # Objects are sorted left to right: an end object has one side with a single neighbour-side object.
    sides = [(word, side) for word, side in (("left of", range(anchor)), ("right of", range(anchor + 1, len(scene.objects))))
             if len(side) == 1]
    if not phrases or not sides:
        return None
    word, side = sides[int(rng.integers(len(sides)))]
    noun = "object" if rng.random() < 0.5 else "shape"
    return f"{noun} {word} the {rng.choice(phrases)}", list(side)


def _multiple(scene, rng):
    groups = []
    for colour in COLOURS:
        groups.append((f"{colour} objects", [i for i, o in enumerate(scene.objects) if o.colour == colour]))
        groups.append((f"{colour} shapes", groups[-1][1]))
    for shape in SHAPES:
        groups.append((_plural(shape), [i for i, o in enumerate(scene.objects) if o.shape == shape]))
    for size in SIZES:
        groups.append((f"{size} shapes", [i for i, o in enumerate(scene.objects) if o.size == size]))
    present = [g for g in groups if g[1]]
    several = [g for g in present if len(g[1]) > 1]
    phrase, targets = (several or present)[int(rng.integers(len(several or present)))]
    return phrase, targets


def _no_target_forms():
    """{form: [(phrase, fits(obj)), ...]} for every attribute form of `_descriptors`, over the whole vocabulary."""
    forms = {}
    for size in SIZES:
        for colour in COLOURS:
            for shape in SHAPES:
                forms.setdefault("size colour shape", []).append(
                    (f"{size} {colour} {shape}", lambda o, z=size, c=colour, s=shape: (o.size, o.colour, o.shape) == (z, c, s)))
    for colour in COLOURS:
        for shape in SHAPES:
            forms.setdefault("colour shape", []).append(
                (f"{colour} {shape}", lambda o, c=colour, s=shape: (o.colour, o.shape) == (c, s)))
        forms.setdefault("colour shape-word", []).append((f"{colour} shape", lambda o, c=colour: o.colour == c))
        forms.setdefault("colour object", []).append((f"{colour} object", lambda o, c=colour: o.colour == c))
    for shape in SHAPES:
        forms.setdefault("shape", []).append((shape, lambda o, s=shape: o.shape == s))
        for size in SIZES:
            forms.setdefault("size shape", []).append((f"{size} {shape}", lambda o, z=size, s=shape: (o.size, o.shape) == (z, s)))
    return forms


_NO_TARGET_FORMS = _no_target_forms()


def _names_heldout_combination(phrase):
    words = phrase.split()
    return any(colour in words and shape in words for colour, shape in HELDOUT_COMBINATIONS)


def _confusable(scene, phrase):
    """Every attribute word of `phrase` fits some object of the scene (on different objects, as the phrase names
    none): only binding the words to one object tells that nothing is named ("the red star" over a red circle
    and a blue star)."""
    words = phrase.split()
    return all(any(word in (o.size, o.colour, o.shape) for o in scene.objects)
               for word in words if word in SIZES or word in COLOURS or word in SHAPES)


def _no_target(scene, rng, confusable_share=0.5):
    """A phrase in one of the attribute forms (`_descriptors`) that fits no object of the scene. Every form is as
    likely as the scene allows, so no form tells on its own that an expression names nothing: the model has to
    look for the object. `confusable_share` of them, where the scene allows, are confusable (`_confusable`): drawn
    at random they would be rare (about 4 %), and without them a model that matches one word at a time passes.
    No phrase names a held-out colour–shape combination: training would otherwise teach that "the red star"
    names nothing, which is what the held-out test asks the other way round."""
    absent = [[phrase for phrase, fits in phrases
               if not any(fits(o) for o in scene.objects) and not _names_heldout_combination(phrase)]
              for phrases in _NO_TARGET_FORMS.values()]
    absent = [phrases for phrases in absent if phrases]
    confusable = [[p for p in phrases if _confusable(scene, p)] for phrases in absent]
    confusable = [phrases for phrases in confusable if phrases]
    if confusable and rng.random() < confusable_share:
        absent = confusable
    phrases = absent[int(rng.integers(len(absent)))]
    return phrases[int(rng.integers(len(phrases)))], []


_MAKERS = {"attribute": _attribute, "relation": _relation, "multiple": _multiple, "no_target": _no_target}


def expression(scene, rng, kind, phrasing="train"):
    """(text, indices of the objects it names) for `kind`, or None where the scene has no such expression
    (a relation needs two objects and a uniquely named anchor; identical twins have no attribute of their own)."""
    made = _MAKERS[kind](scene, rng)
    if made is None:
        return None
    phrase, targets = made
    templates = PHRASINGS["multiple" if kind == "multiple" else "single"][phrasing]
    return templates[int(rng.integers(len(templates)))].format(phrase), targets


SHAPE_CLASSES = len(SHAPES) + 1  # the classes of a `shape_map`: background, then each shape
COLOUR_CLASSES = len(COLOURS) + 1  # the classes of a `colour_map`: background, then each colour


# The words that name each class of those maps (the background: none), for matching the words of an expression
CLASS_WORDS = {"shape": [[], *([shape, _plural(shape)] for shape in SHAPES)], "colour": [[], *([c] for c in COLOURS)]}


def class_maps(scene, image_size):
    """{"shape_map", "colour_map"}, uint8 (S, S): 0 where no object is, else 1 + the index in `shapes.SHAPES` /
    `shapes.COLOURS` of the object drawn there (the segmenter's auxiliary per-pixel targets: what each object is,
    whatever the words ask). The scene's label map's first two channels, drawn once
    (`region_labels.REGION_SHAPES` / `REGION_COLOURS` begin with `shapes.SHAPES` / `shapes.COLOURS`)."""
    labels = scene_label_map(scene, image_size)
    return {"shape_map": labels[..., 0], "colour_map": labels[..., 1]}


# Per scene: two attribute expressions (the commonest kind in use, and the one the no-target expressions share
# their forms with), then one of every other kind the scene allows.
PER_SCENE = ("attribute", "attribute", "relation", "multiple", "no_target")
# Training scenes try a second relation: most scenes allow two ("left of" naming the first object, "right of" the
# last), and the same image asked both ways is what teaches the two words apart. With one, some runs marked every
# object for a relation after 8 epochs (the target among them) instead of the one it names.
TRAINING_PER_SCENE = ("attribute", "attribute", "relation", "relation", "multiple", "no_target")


def referring_examples(scene, image_size, rng, kinds=PER_SCENE, phrasing="train"):
    """The expressions of `kinds` the scene allows (a repeated text once): a list of {"text", "kind", "mask" (H, W)
    uint8 0/1}."""
    masks = object_masks(scene, image_size)
    examples, texts = [], set()
    for kind in kinds:
        made = expression(scene, rng, kind, phrasing)
        if made is None or made[0] in texts:
            continue
        text, targets = made
        texts.add(text)
        mask = np.zeros((image_size, image_size), np.uint8)
        for index in targets:
            mask |= masks[index].astype(np.uint8)
        examples.append({"text": text, "kind": kind, "mask": mask})
    return examples
