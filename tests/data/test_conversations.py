"""LLaVA conversation JSON: records read and written back unchanged, bad records named by file, index and id and
skipped; the built-in instruction conversations answer what they ask, checked by a reader of the words against the
scene."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from tfmm.data import DataChecks
from tfmm.data.conversations import Conversation, read_conversations, write_conversations
from tfmm.data.instructions import QUESTIONS, TRAINING_TURNS, TURNS, normalise_answer, scene_conversation
from tfmm.data.region_labels import REGION_COLOURS, REGION_SHAPES, REGION_SIZES
from tfmm.data.shapes import COLOURS, SHAPES, SIZES, sample_scene
from tfmm.errors import TfmmError


def _record(index, turns=(("what colour is it?", "red"),), image=None):
    messages = []
    for number, (question, answer) in enumerate(turns):
        messages += [{"from": "human", "value": ("<image>\n" if number == 0 else "") + question},
                     {"from": "gpt", "value": answer}]
    return {"id": str(index), "image": image or f"images/{index}.png", "conversations": messages}


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "images").mkdir()
    for i in range(12):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / "images" / f"{i}.png")
    return tmp_path


def test_records_read_and_written_back_unchanged(folder):
    records = [_record(0, [("what colour is the circle?", "Red."), ("and its size?", "small")]),
               {**_record(1), "intents": ["colour"]},
               {**_record(2), "conversations": [{"from": "human", "value": "is it red?\n<image>"},
                                                {"from": "gpt", "value": "yes"}]}]
    (folder / "chat.json").write_text(json.dumps(records))
    read = read_conversations(folder / "chat.json", DataChecks())
    assert read[0] == Conversation("0", folder / "images/0.png",
                                   (("what colour is the circle?", "Red."), ("and its size?", "small")), ("", ""))
    assert read[1].intents == ("colour",) and read[2].turns == (("is it red?", "yes"),)
    out = folder / "copy" / "again.json"
    write_conversations(read, out)
    again = read_conversations(out, DataChecks())
    assert [(c.id, c.image.resolve(), c.turns, c.intents) for c in again] == \
        [(c.id, c.image.resolve(), c.turns, c.intents) for c in read]
    assert json.loads(out.read_text())[0]["image"] == "../images/0.png"


def test_a_label_map_is_read_written_back_and_batched_at_the_size_asked(folder):
    from tfmm.data.conversations import conversation_dataset

    labels = np.zeros((8, 8, 3), np.uint8)
    labels[2:6, 1:3] = (2, 5, 1)
    labels[0, 7] = (1, 255, 2)
    Image.fromarray(labels).save(folder / "images" / "labels.png")
    records = [{**_record(0), "labels": "images/labels.png"}, {**_record(1), "labels": "images/gone.png"}]
    (folder / "chat.json").write_text(json.dumps(records))
    logged = []
    read = read_conversations(folder / "chat.json", DataChecks(log=logged.append))
    assert [c.labels for c in read] == [folder / "images/labels.png"]
    assert any("record 1 (id '1')" in line and "gone.png: file not found" in line for line in logged), logged
    write_conversations(read, folder / "copy" / "again.json")
    assert read_conversations(folder / "copy" / "again.json", DataChecks())[0].labels.resolve() == read[0].labels.resolve()
    row = next(conversation_dataset(read, label_size=4).as_numpy_iterator())
    np.testing.assert_array_equal(row["labels"], labels[1::2, 1::2])  # nearest: pixel 2i + 1 (half-pixel centres)
    plain = Conversation("2", folder / "images/2.png", (("q", "a"),), ("",))
    assert "labels" not in next(conversation_dataset(read + [plain], label_size=4).as_numpy_iterator())


def test_bad_records_are_named_and_skipped(folder):
    (folder / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    records = [_record(i) for i in range(12)]
    records[1] = "just text"
    records[2].pop("conversations")
    records[3]["conversations"][0]["value"] = "what colour is it?"  # no <image>
    records[4]["conversations"] = records[4]["conversations"][:1]  # a question with no answer
    records[5]["conversations"][1]["from"] = "human"
    records[6]["conversations"][0]["value"] = "<image>  "
    records[7]["image"] = "images/missing.png"
    records[8]["image"] = "images/broken.png"
    records[9]["intents"] = ["colour", "shape"]
    records[10]["id"] = "0"
    (folder / "chat.json").write_text(json.dumps(records))
    logged = []
    checks = DataChecks(log=logged.append)
    assert [c.id for c in read_conversations(folder / "chat.json", checks)] == ["0", "11"]
    joined = "\n".join(logged)
    for where, reason in [("record 1", "not a JSON object"), ("record 2 (id '2')", "missing field 'conversations'"),
                          ("record 3 (id '3')", "the first human message has no <image>"),
                          ("record 4 (id '4')", "the last message (0) is the human's: it has no answer"),
                          ("record 5 (id '5')", "message 1 is from 'human', expected 'gpt'"),
                          ("record 6 (id '6')", "message 0: empty question"),
                          ("record 7 (id '7')", f"image {folder / 'images/missing.png'}: file not found"),
                          ("record 8 (id '8')", f"image {folder / 'images/broken.png'}: unreadable image"),
                          ("record 9 (id '9')", "'intents' must be a list of 1 strings, one per assistant turn"),
                          ("record 10 (id '0')", "id '0' appears twice")]:
        assert f"chat.json: {where}: {reason}" in joined, (where, reason, joined)
    with pytest.raises(TfmmError, match=r"chat.json: record 1: not a JSON object \(strict mode\)"):
        read_conversations(folder / "chat.json", DataChecks(strict=True))
    (folder / "dict.json").write_text("{}")
    with pytest.raises(TfmmError, match="dict.json: a LLaVA conversation file is a JSON list of records, got dict"):
        read_conversations(folder / "dict.json", DataChecks())


def _fits(objects, words):
    return [o for o in objects if all(w in (o.colour, o.shape, o.size) for w in words)]


def _oracle(scene, question, previous):
    """(the answer to a built-in question, read from its words and the scene alone; the object it asks about)."""
    words = normalise_answer(question).split()
    small_or_large = "small" in words and ("large" in words or "big" in words)  # "is the red object small or large?"
    asks_size = small_or_large or "size" in words or "big" in words or words[:2] == ["how", "large"]
    named = [w for w in words if w in COLOURS + SHAPES + (() if asks_size else SIZES)]
    listing = lambda objs: ", ".join(o.phrase() for o in objs[:-1]) + (" and " if len(objs) > 1 else "") + objs[-1].phrase()
    overviews = ("what do you see?", "what is in this picture?", "tell me about the image.", "tell me what is in the image.",
                 "what does the picture show?", "name the shapes from left to right.", "what objects are in the image?")
    if "describe" in words or "description" in words or "list" in words or question in overviews:
        return listing(scene.objects), None
    if "many" in words or "count" in words or "number" in words:
        return ("none", "one", "two", "three")[len(scene.objects)], None
    if "it" in words or "its" in words:
        attribute = next(w for w in ("colour", "shape", "size") if w in words)
        return getattr(previous, attribute), previous
    if "left" in words or "right" in words:
        found = _fits(scene.objects, named)
        assert len(found) == 1, (scene.key, question)
        anchor = found[0]
        index = scene.objects.index(anchor)
        side = scene.objects[:index] if "left" in words else scene.objects[index + 1:]
        return (listing(side) if side else "nothing"), None
    if words[0] in ("is", "does", "can", "do") and not small_or_large:
        there = bool(_fits(scene.objects, named))
        if "no" in words or "not" in words or "without" in words:
            thing = " ".join(named) if set(named) & set(SHAPES) else f"{named[0]} shape"  # "is there no red shape?"
            return (f"no there is a {thing}" if there else f"yes there is no {thing}"), None
        return ("yes" if there else "no"), None
    attribute = "size" if asks_size else "colour" if "colour" in words else "shape"
    found = _fits(scene.objects, named)
    if not found:
        return f"there is no {named[0]}", None
    target, = found
    return getattr(target, attribute), target


def _template_of(question):
    """(intent, phrasing) of the templates that `question` fills in ("is there a {x}?" and "is there a {x} in the
    picture?" both fit "is there a red star in the picture?"): one intent and phrasing, or the test fails."""
    fields = {"x": "[a-z ]+", "side": "(left|right) of", "attribute": "(colour|shape|size)"}
    found = {(intent, phrasing) for intent, sets in QUESTIONS.items() for phrasing, templates in sets.items()
             for t in templates if re.fullmatch(re.escape(t).replace(r"\{", "{").replace(r"\}", "}").format(**fields), question)}
    assert len(found) == 1, (question, found)
    return found.pop()


@pytest.mark.parametrize("phrasing", ["train", "heldout", "training"])
def test_built_in_answers_are_what_the_scene_says(phrasing):
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        scene = sample_scene(rng, 32, "train")
        turns, intents = scene_conversation(scene, rng, phrasing)
        previous = None
        for (question, answer), intent in zip(turns, intents):
            expected, previous = _oracle(scene, question, previous)
            assert normalise_answer(answer) == normalise_answer(expected), (scene.key, question, answer, expected)
            seen.add(intent)
            assert _template_of(question)[1] in ({"train", "extra"} if phrasing == "training" else {phrasing}), question
    assert seen == {"describe", "count", "colour", "shape", "size", "relation", "yes/no", "absent", "follow-up"}




def test_built_in_set_is_written_in_llava_format_and_reads_back_whole(tmp_path):
    from tfmm.data import easy_vqa
    from tfmm.data.instructions import build_instruction_set

    sizes = {"train": 24, "test": 4, "phrasing": 4}
    written = build_instruction_set(tmp_path / "set", ("train", "test", "phrasing", "easy_vqa_test"), sizes)
    checks = DataChecks(strict=True)  # every record must read: a bad one stops this
    read = {split: read_conversations(path, checks) for split, path in written.items()}
    assert {split: len(c) for split, c in read.items() if split in sizes} == sizes
    groups, _ = easy_vqa.read_directory(easy_vqa.package_directory("test"))
    official = [(q, a) for g in groups for q, a in zip(g["questions"], g["answers"])]
    assert [c.turns[0] for c in read["easy_vqa_test"]] == official  # every official test question, once
    first = groups[0]["image_path"]
    assert read["easy_vqa_test"][0].image.read_bytes() == open(first, "rb").read()
    for split in sizes:
        fewest, most = TRAINING_TURNS if split == "train" else TURNS
        assert {len(c.turns) for c in read[split]} <= set(range(fewest, most + 1))
        assert all(len(c.intents) == len(c.turns) for c in read[split])
        assert all(c.image.is_relative_to(tmp_path / "set" / "images" / split) for c in read[split])
    phrasings = {_template_of(q)[1] for c in read["phrasing"] for q, _ in c.turns}
    assert phrasings == {"heldout"} and {_template_of(q)[1] for c in read["test"] for q, _ in c.turns} == {"train"}
    assert {_template_of(q)[1] for c in read["train"] for q, _ in c.turns} == {"train", "extra"}
    # every scene's label map holds exactly the objects (size, colour, shape) its description lists
    described = [c for c in read["train"] + read["test"] if c.intents[0] == "describe"]
    assert described and all(c.labels.is_relative_to(tmp_path / "set" / "labels") for c in read["train"])
    for conversation in described:
        labels = np.asarray(Image.open(conversation.labels)).reshape(-1, 3)
        drawn = {(REGION_SIZES[z - 1], REGION_COLOURS[c - 1], REGION_SHAPES[s - 1]) for s, c, z in labels if s}
        listed = set(re.findall(r"(\w+) (\w+) (circle|square|triangle|star|cross)", conversation.turns[0][1]))
        assert drawn == listed, (conversation.id, conversation.turns[0][1])


def test_dataset_pads_turns_and_reads_the_image_bytes(folder):
    from tfmm.data.conversations import conversation_dataset

    short = Conversation("a", folder / "images/1.png", (("q1", "a1"),), ("colour",))
    long = Conversation("b", folder / "images/2.png", (("q1", "a1"), ("q2", "a2"), ("q3", "a3")), ("", "", "count"))
    rows = list(conversation_dataset([short, long]).as_numpy_iterator())
    assert rows[0]["questions"].tolist() == [b"q1", b"", b""] and rows[0]["intents"].tolist() == [b"colour", b"", b""]
    assert rows[1]["answers"].tolist() == [b"a1", b"a2", b"a3"]
    assert rows[1]["image"] == (folder / "images/2.png").read_bytes()
    with pytest.raises(TfmmError, match="no conversations"):
        conversation_dataset([])


def test_training_asks_both_sides_of_one_object_in_a_row():
    """Training's relation pairs: the same object, the other side, the next turn (the answers are checked by the
    oracle test above); the evaluation splits ask one side at a time."""
    def pairs(phrasing):
        rng, found = np.random.default_rng(1), 0
        for _ in range(300):
            turns, intents = scene_conversation(sample_scene(rng, 32, "train"), rng, phrasing, turns=5)
            for (first, _), (second, _), a, b in zip(turns, turns[1:], intents, intents[1:]):
                if a == b == "relation":
                    sides = [re.search(r"(left|right) of the ([a-z ]+)", q).groups() for q in (first, second)]
                    found += sides[0][0] != sides[1][0] and sides[0][1] == sides[1][1]
        return found

    assert pairs("training") > 60 and pairs("train") < 15  # 98 and 5 when written


def test_training_presence_questions_answer_yes_and_no_and_need_both_words_of_a_pair():
    from tfmm.data.instructions import _balanced_presence
    from tfmm.data.shapes import Scene, ShapeObject

    scene = Scene((ShapeObject("circle", "red", "small", 0.2, 0.5), ShapeObject("star", "blue", "large", 0.7, 0.5)))
    rng = np.random.default_rng(0)
    answers, pairs_missing = set(), set()
    for _ in range(400):
        question, answer, intent, _ = _balanced_presence(scene, rng, "training")
        expected, _ = _oracle(scene, question, None)
        assert normalise_answer(answer) == normalise_answer(expected) and intent == "yes/no", (question, answer)
        answers.add(normalise_answer(answer).split()[0])
        named = [w for w in normalise_answer(question).split() if w in COLOURS + SHAPES]
        if len(named) == 2 and not _fits(scene.objects, named):
            pairs_missing.add(" ".join(named))
    assert answers == {"yes", "no"}
    # a missing pair is one whose colour and shape the scene has apart, so neither word alone answers it
    assert pairs_missing == {"red star", "blue circle"}


def test_easy_vqa_training_draw_balances_each_kind_of_questions_answers():
    from tfmm.data import easy_vqa
    from tfmm.data.instructions import _answer_balancing_weights

    groups, _ = easy_vqa.read_directory(easy_vqa.package_directory("train"))
    kinds = {easy_vqa.question_kind(q): easy_vqa.question_type(a) for g in groups for q, a in zip(g["questions"], g["answers"])}
    assert kinds == {"presence of a colour": "yes/no", "absence of a colour": "yes/no", "presence of a shape": "yes/no",
                     "absence of a shape": "yes/no", "colour": "colour", "shape": "shape"}  # every question has its kind
    small = [{"questions": ["is there a red shape?", "is there a blue shape?", "what color is the shape?"],
              "answers": ["yes", "no", "red"]},
             {"questions": ["is there a red shape?", "is there a teal shape?"], "answers": ["no", "no"]}]
    # presence of a colour: 1 yes, 3 no, 4 in all, 2 answers → 4 / (1·2) = 2 for the yes, 4 / (3·2) for each no
    assert np.allclose(_answer_balancing_weights(small)[0], [2.0, 2 / 3, 1.0])
    assert np.allclose(_answer_balancing_weights(small)[1], [2 / 3, 2 / 3])
