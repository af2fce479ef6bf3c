import json
import types

import pytest

from tfmm.data import ImageCheck, easy_vqa
from tfmm.data.caption_sources import EASY_VQA_PHRASINGS, load_caption_examples


def test_easy_vqa_colour_and_shape_are_read_from_yes_no_questions_alone(tmp_path):
    easy_vqa.generate(tmp_path, 60, seed=4)
    groups, _ = easy_vqa.read_directory(tmp_path)
    told = 0
    for group in groups:
        truth = easy_vqa.scene_from_questions(group["questions"], group["answers"])
        assert None not in truth  # generated images are always asked their shape and colour
        yes_no = [(q, a) for q, a in zip(group["questions"], group["answers"]) if a in ("yes", "no")]
        colour, shape = easy_vqa.scene_from_questions([q for q, _ in yes_no], [a for _, a in yes_no])
        assert colour in (None, truth[0]) and shape in (None, truth[1])
        told += colour is not None
    assert told > 10


def test_easy_vqa_answers_override_nothing_they_contradict():
    assert easy_vqa.scene_from_questions(["what color is the shape?", "what is the red shape?"], ["red", "circle"]) == \
        ("red", "circle")
    # Two different colours cannot both be right: the colour stays unknown.
    assert easy_vqa.scene_from_questions(["what color is the shape?", "is there a blue shape?"], ["red", "yes"])[0] is None


def test_shapes_captions_come_with_their_objects(tfds_dir):
    data = types.SimpleNamespace(source="shapes", shapes_config="tiny", data_dir=str(tfds_dir), image_size=32)
    for example in load_caption_examples(data, "test", ImageCheck()).take(5).as_numpy_iterator():
        objects = example["objects"].decode().split("|")
        assert 1 <= len(objects) <= 3
        for caption in example["captions"]:
            for thing in objects:
                colour, shape = thing.split()
                assert colour in caption.decode() and shape in caption.decode()


def test_easy_vqa_captions_use_every_phrasing():
    data = types.SimpleNamespace(source="easy_vqa", image_size=32, validation_fraction=0.1)
    example = next(load_caption_examples(data, "test", ImageCheck()).as_numpy_iterator())
    colour, shape = example["objects"].decode().split()
    assert [c.decode() for c in example["captions"]] == [p.format(colour=colour, shape=shape) for p in EASY_VQA_PHRASINGS]


def test_user_caption_folders_have_no_known_objects(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
    (tmp_path / "captions.jsonl").write_text(json.dumps({"image": "a.png", "caption": "red"}) + "\n")
    data = types.SimpleNamespace(source=str(tmp_path), image_size=16, validation_fraction=0.0, strict=False)
    example = next(load_caption_examples(data, "train", ImageCheck()).as_numpy_iterator())
    assert example["objects"] == b"" and example["captions"].tolist() == [b"red"]


def test_easy_vqa_has_no_heldout_split():
    from tfmm.errors import TfmmError

    with pytest.raises(TfmmError, match="no heldout"):
        load_caption_examples(types.SimpleNamespace(source="easy_vqa", image_size=32, validation_fraction=0.1),
                              "heldout", ImageCheck())
