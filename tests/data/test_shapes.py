import numpy as np
import tensorflow_datasets as tfds

from tfmm.data import (
    shapes,
    shapes_builder,  # noqa: F401  (registers tfmm_shapes)
)


def test_examples_are_deterministic_by_seed():
    a = shapes.generate_example(3, "train", 7)
    b = shapes.generate_example(3, "train", 7)
    c = shapes.generate_example(4, "train", 7)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["captions"] == b["captions"]
    assert not np.array_equal(a["image"], c["image"])


def test_every_caption_names_every_object():
    for index in range(50):
        example = shapes.generate_example(0, "train", index)
        objects = example["scene"].split("|")
        assert 1 <= len(objects) <= 3 and len(example["captions"]) >= 4
        for caption in example["captions"]:
            positions = [caption.find(obj) for obj in objects]
            assert all(p >= 0 for p in positions), (caption, objects)


def test_objects_are_ordered_left_to_right_and_drawn_in_their_colour():
    own = total = 0
    for index in range(100):
        example = shapes.generate_example(0, "train", index)
        objects = example["objects"]
        assert objects["x"] == sorted(objects["x"])
        image = example["image"].astype(int)
        for slot, (colour, x, y) in enumerate(zip(objects["colour"], objects["x"], objects["y"])):
            pixel = image[int(round(y * 64 - 0.5)), int(round(x * 64 - 0.5))]
            nearest = min(shapes.COLOURS, key=lambda name: np.abs(pixel - np.array(shapes.RGB[name])).sum())
            # Objects are drawn left to right and may overlap: the centre shows the object's colour, or that of
            # an object drawn over it later (to its right).
            assert nearest == colour or nearest in objects["colour"][slot + 1:], (index, colour, nearest)
            own += nearest == colour
            total += 1
    assert own / total > 0.95


def test_heldout_combinations_appear_only_in_heldout():
    heldout = set(shapes.HELDOUT_COMBINATIONS)
    for split in ("train", "validation", "test"):
        for index in range(100):
            objects = shapes.generate_example(0, split, index)["objects"]
            assert not heldout & set(zip(objects["colour"], objects["shape"]))
    for index in range(20):
        objects = shapes.generate_example(0, "heldout", index)["objects"]
        assert set(zip(objects["colour"], objects["shape"])) <= heldout


def test_questions_have_answers_and_types():
    example = shapes.generate_example(0, "test", 1)
    q = example["questions"]
    assert len(q["question"]) == len(q["answer"]) == len(q["type"]) > 0
    assert {"yes/no", "count"} <= set(q["type"])
    assert q["answer"][q["question"].index("how many shapes are there?")] == str(len(example["objects"]["x"]))


def test_tfds_load_works_offline(tfds_dir):
    builder = tfds.builder("tfmm_shapes/tiny", data_dir=str(tfds_dir))
    assert builder.info.splits["train"].num_examples == 96
    assert set(builder.info.splits.keys()) == {"train", "validation", "test", "heldout"}
    example = next(iter(tfds.load("tfmm_shapes/tiny", split="test", data_dir=str(tfds_dir))))
    assert example["image"].shape == (32, 32, 3)
    assert example["captions"].shape[0] >= 4
