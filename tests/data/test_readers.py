import json

import numpy as np
import pytest
from PIL import Image

from tfmm.config import DataConfig
from tfmm.data import ImageCheck, load_captioned_images
from tfmm.data.readers import read_caption_file, read_coco_captions, read_tfrecord_shards, write_tfrecord_shards
from tfmm.errors import TfmmError


def _images(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((20, 30, 3), i * 20, np.uint8)).save(folder / f"{i}.png")


@pytest.fixture
def caption_folder(tmp_path):
    _images(tmp_path / "img", 4)
    rows = [{"image": f"img/{i}.png", "caption": f"picture number {i}"} for i in range(4)]
    rows.append({"image": "img/0.png", "caption": "another caption of zero"})
    (tmp_path / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return tmp_path


def test_jsonl_groups_captions_per_image(caption_folder):
    examples = read_caption_file(caption_folder / "captions.jsonl")
    assert len(examples) == 4
    assert examples[0]["captions"] == ["picture number 0", "another caption of zero"]


def test_csv_reader(tmp_path):
    _images(tmp_path, 1)
    (tmp_path / "captions.csv").write_text("image,caption\n0.png,a grey square\n")
    assert read_caption_file(tmp_path / "captions.csv")[0]["captions"] == ["a grey square"]


def test_empty_caption_and_missing_field_name_the_line(tmp_path):
    (tmp_path / "captions.jsonl").write_text('{"image": "a.png", "caption": "ok"}\n{"image": "b.png", "caption": "  "}\n')
    with pytest.raises(TfmmError, match=r"captions\.jsonl:2: empty caption"):
        read_caption_file(tmp_path / "captions.jsonl")
    (tmp_path / "captions.jsonl").write_text('{"image": "a.png"}\n')
    with pytest.raises(TfmmError, match=r"captions\.jsonl:1: missing field 'caption'"):
        read_caption_file(tmp_path / "captions.jsonl")


def test_coco_captions(tmp_path):
    _images(tmp_path / "images", 2)
    coco = {"images": [{"id": 1, "file_name": "0.png"}, {"id": 2, "file_name": "1.png"}],
            "annotations": [{"image_id": 1, "caption": "a"}, {"image_id": 2, "caption": "b"}, {"image_id": 1, "caption": "c"}]}
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    examples = read_coco_captions(tmp_path / "captions.json")
    assert [e["captions"] for e in examples] == [["a", "c"], ["b"]]
    assert examples[0]["image_path"].endswith("images/0.png")
    coco["annotations"].append({"image_id": 9, "caption": "x"})
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    with pytest.raises(TfmmError, match="unknown image_id 9"):
        read_coco_captions(tmp_path / "captions.json")


def test_missing_and_corrupt_images_are_skipped_by_name_and_counted(caption_folder):
    (caption_folder / "img" / "1.png").write_bytes(b"not a png")
    (caption_folder / "img" / "2.png").unlink()
    messages = []
    check = ImageCheck(log=messages.append)
    config = DataConfig(source=str(caption_folder), image_size=16, validation_fraction=0.0)
    dataset = load_captioned_images(config, "train", check)
    assert len(list(dataset)) == 2
    assert any("1.png" in m and "unreadable" in m for m in messages)
    assert any("2.png" in m and "missing" in m for m in messages)
    assert check.summary().startswith("skipped 2")
    with pytest.raises(TfmmError, match=r"1\.png: unreadable"):
        load_captioned_images(config, "train", ImageCheck(strict=True))


def test_tfrecord_shards_round_trip(caption_folder, tmp_path):
    examples = read_caption_file(caption_folder / "captions.jsonl")
    pattern = write_tfrecord_shards(examples, tmp_path / "shards", num_shards=3)
    assert len(list((tmp_path / "shards").glob("*.tfrecord"))) == 3
    assert not list((tmp_path / "shards").glob("*.partial"))
    records = list(read_tfrecord_shards(pattern))
    assert sorted(r["scene"].numpy().decode() for r in records) == sorted(e["scene"] for e in examples)
    config = DataConfig(source=pattern, image_size=8, validation_fraction=0.0)
    decoded = list(load_captioned_images(config, "train", ImageCheck()))
    assert len(decoded) == 4 and decoded[0]["image"].shape == (8, 8, 3)
