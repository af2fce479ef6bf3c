import json

import numpy as np
import pytest

from tfmm.apps.vqa import VQADataConfig
from tfmm.data import ImageCheck, clips, easy_vqa, shapes
from tfmm.data.question_groups import load_question_groups
from tfmm.errors import TfmmError


def collect(dataset):
    return list(dataset.as_numpy_iterator())


@pytest.fixture(scope="module")
def official_test():
    return collect(load_question_groups(VQADataConfig(source="easy_vqa"), "test", ImageCheck()))


def test_easy_vqa_test_split_is_the_official_one(official_test):
    assert sum(len(g["questions"]) for g in official_test) == 9673  # easy-VQA's README: 9,673 test questions
    assert len({g["image_id"] for g in official_test}) == 1000
    assert all(g["image"].shape == (64, 64, 3) for g in official_test[:5])
    assert all(len(g["questions"]) <= 12 for g in official_test)
    types = {t.decode() for g in official_test for t in g["types"]}
    assert types == {"colour", "shape", "yes/no"}


def test_easy_vqa_train_and_validation_partition_the_official_train_split():
    config = VQADataConfig(source="easy_vqa", validation_fraction=0.1)
    sizes, ids = {}, {}
    for split in ("train", "validation"):
        dataset = load_question_groups(config, split, ImageCheck()).map(lambda g: {"q": g["questions"], "id": g["image_id"]})
        rows = collect(dataset)
        sizes[split] = sum(len(r["q"]) for r in rows)
        ids[split] = {r["id"] for r in rows}
    assert sizes["train"] + sizes["validation"] == 38575  # all official training questions, none twice
    assert not ids["train"] & ids["validation"]
    assert 0.07 < len(ids["validation"]) / 4000 < 0.13


def test_large_groups_split_into_balanced_chunks(tmp_path):
    easy_vqa.generate(tmp_path, 3, seed=1)
    rows = json.loads((tmp_path / "questions.json").read_text())
    rows += [[f"is there a red shape? {i}", "no", 0] for i in range(15)]
    (tmp_path / "questions.json").write_text(json.dumps(rows))
    groups = collect(load_question_groups(VQADataConfig(source=str(tmp_path), validation_fraction=0.0), "train", ImageCheck()))
    sizes = sorted(len(g["questions"]) for g in groups if g["image_id"] == b"0")
    total = sum(1 for r in rows if r[2] == 0)
    assert sum(sizes) == total and max(sizes) <= 12 and max(sizes) - min(sizes) <= 1


def test_generated_easy_vqa_style_data_reads_back_with_consistent_answers(tmp_path):
    easy_vqa.generate(tmp_path, 12, seed=3)
    groups, answers = easy_vqa.read_directory(tmp_path)
    assert answers == list(easy_vqa.ANSWERS) and len(groups) == 12
    for group in groups:
        qa = dict(zip(group["questions"], group["answers"]))
        colour = next(a for a in group["answers"] if easy_vqa.question_type(a) == "colour")
        image = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(group["image_path"]).convert("RGB"))
        # The shape's colour is the image's most common non-background pixel.
        pixels = image.reshape(-1, 3)
        values, counts = np.unique(pixels[(pixels < 225).any(-1)], axis=0, return_counts=True)
        assert tuple(values[counts.argmax()]) == easy_vqa.COLOURS[colour]
        for question, answer in qa.items():
            if question.startswith("is there a ") and question.endswith(" shape?"):
                asked = question[len("is there a "):-len(" shape?")]
                assert answer == ("yes" if asked == colour else "no"), question


def test_bad_directories_are_named(tmp_path):
    with pytest.raises(TfmmError, match="questions.json is missing"):
        easy_vqa.read_directory(tmp_path)
    (tmp_path / "questions.json").write_text('[["what?", "red"]]')
    with pytest.raises(TfmmError, match=r"entry #0"):
        easy_vqa.read_directory(tmp_path)
    with pytest.raises(TfmmError, match="not one of easy_vqa, shapes, clips"):
        load_question_groups(VQADataConfig(source=str(tmp_path / "nowhere")), "train", ImageCheck())


def test_missing_and_corrupt_images_are_skipped_by_name_or_fail_when_strict(tmp_path):
    easy_vqa.generate(tmp_path, 6, seed=2)
    (tmp_path / "images" / "1.png").unlink()
    (tmp_path / "images" / "2.png").write_bytes(b"not a png")
    logged = []
    check = ImageCheck(log=logged.append)
    groups = collect(load_question_groups(VQADataConfig(source=str(tmp_path), validation_fraction=0.0), "train", check))
    assert {g["image_id"] for g in groups} == {b"0", b"3", b"4", b"5"}
    assert any("1.png: missing" in line for line in logged) and any("2.png: unreadable" in line for line in logged)
    with pytest.raises(TfmmError, match="1.png"):
        load_question_groups(VQADataConfig(source=str(tmp_path)), "train", ImageCheck(strict=True))


def test_shapes_questions_come_as_groups(tfds_dir):
    config = VQADataConfig(source="shapes", shapes_config="tiny", data_dir=str(tfds_dir), image_size=32)
    groups = collect(load_question_groups(config, "validation", ImageCheck()))
    assert len(groups) == 16 and groups[0]["image"].shape == (32, 32, 3)
    assert {t.decode() for g in groups for t in g["types"]} >= {"colour", "yes/no", "count"}


def test_clip_answers_match_the_motion():
    rng = np.random.default_rng(5)
    for _ in range(8):
        clip, qa = clips.generate_clip(rng, frames=4, image_size=48)
        answers = {q: a for q, a, _ in qa}
        colour, direction = answers["what colour is the moving shape?"], qa[2][1]
        target = np.array(shapes.RGB[colour])
        centres = []
        for frame in (clip[0], clip[-1]):
            ys, xs = np.nonzero(np.abs(frame.astype(int) - target).sum(-1) < 60)
            centres.append(np.array([xs.mean(), ys.mean()]))
        dx, dy = centres[1] - centres[0]
        moved = {"left": -dx, "right": dx, "up": -dy, "down": dy}
        assert max(moved, key=moved.get) == direction
