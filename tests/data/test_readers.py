import json

import numpy as np
import pytest
import tensorflow as tf
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


def _coco(tmp_path, count, splits=None):
    _images(tmp_path / "images", count)
    images = [{"id": i, "file_name": f"{i}.png", **({"split": splits[i]} if splits else {})} for i in range(count)]
    annotations = [{"image_id": i, "caption": f"picture {i}"} for i in range(count)]
    (tmp_path / "captions.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return tmp_path / "captions.json"


def _scenes(config, split, check=None):
    return sorted(e["scene"].numpy().decode() for e in load_captioned_images(config, split, check or ImageCheck()))


def test_coco_split_field_gives_disjoint_karpathy_splits(tmp_path):
    splits = ["train", "restval", "val", "test", "train", "test", "val", "train"]
    path = _coco(tmp_path, len(splits), splits)
    config = DataConfig(source=str(path), image_size=8, validation_fraction=0.3)
    got = {s: _scenes(config, s) for s in ("train", "validation", "test")}
    assert got == {"train": ["0.png", "1.png", "4.png", "7.png"], "validation": ["2.png", "6.png"], "test": ["3.png", "5.png"]}


def test_coco_without_split_field_uses_the_hash_split(tmp_path):
    path = _coco(tmp_path, 12)
    config = DataConfig(source=str(path), image_size=8, validation_fraction=0.25)
    got = {s: _scenes(config, s) for s in ("train", "validation", "test")}
    assert all(got.values()), got  # none empty at this size and fraction
    assert sorted(sum(got.values(), [])) == sorted(f"{i}.png" for i in range(12))  # disjoint and complete
    from tfmm.data.sources import hash_split
    expected = hash_split(tf.constant([f"{i}.png" for i in range(12)]), 0.25).numpy()
    assert got["test"] == sorted(f"{i}.png" for i in range(12) if expected[i] == b"test")


def test_coco_split_field_on_some_images_only_or_unknown_is_an_error(tmp_path):
    _coco(tmp_path, 3, ["train", "test", "val"])
    data = json.loads((tmp_path / "captions.json").read_text())
    del data["images"][1]["split"]
    (tmp_path / "captions.json").write_text(json.dumps(data))
    with pytest.raises(TfmmError, match="'1.png' has none"):
        read_coco_captions(tmp_path / "captions.json")
    data["images"][1]["split"] = "dev"
    (tmp_path / "captions.json").write_text(json.dumps(data))
    with pytest.raises(TfmmError, match=r"images\[1\] split 'dev'"):
        read_coco_captions(tmp_path / "captions.json")


def test_karpathy_dataset_json_reads_with_its_splits(tmp_path):
    _images(tmp_path / "images" / "val2014", 3)
    images = [{"filepath": "val2014", "filename": f"{i}.png", "split": s, "sentences": [{"raw": f"a {i}"}, {"raw": f"b {i}"}]}
              for i, s in enumerate(["train", "val", "test"])]
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": images}))
    examples = read_coco_captions(tmp_path / "dataset_coco.json")
    assert [(e["scene"], e["captions"], e["split"]) for e in examples] == [
        ("val2014/0.png", ["a 0", "b 0"], "train"), ("val2014/1.png", ["a 1", "b 1"], "validation"),
        ("val2014/2.png", ["a 2", "b 2"], "test")]
    config = DataConfig(source=str(tmp_path / "dataset_coco.json"), image_size=8)
    assert _scenes(config, "validation") == ["val2014/1.png"]


def test_an_image_pillow_reads_but_tensorflow_cannot_is_skipped_by_name(caption_folder):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(caption_folder / "img" / "3.png", format="TIFF")
    with Image.open(caption_folder / "img" / "3.png") as image:
        image.verify()  # Pillow accepts it
    messages = []
    config = DataConfig(source=str(caption_folder), image_size=8, validation_fraction=0.0)
    check = ImageCheck(log=messages.append)
    assert _scenes(config, "train", check) == ["img/0.png", "img/1.png", "img/2.png"]
    assert messages == [messages[0]] and "3.png" in messages[0] and "TensorFlow cannot decode" in messages[0]


def test_prepared_shards_keep_explicit_splits(tmp_path, capsys):
    from tools.prepare_data import main as prepare

    _images(tmp_path / "data" / "img", 6)
    for split, ids in (("train", [0, 1, 2]), ("validation", [3]), ("test", [4, 5])):
        rows = [{"image": f"img/{i}.png", "caption": f"picture {i}"} for i in ids]
        (tmp_path / "data" / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert prepare([str(tmp_path / "data"), str(tmp_path / "shards"), "--num-shards", "2"]) == 0
    assert "splits kept: test 2, train 3, validation 1" in capsys.readouterr().out
    config = DataConfig(source=str(tmp_path / "shards" / "data-*-of-*.tfrecord"), image_size=8, validation_fraction=0.5)
    assert {s: _scenes(config, s) for s in ("train", "validation", "test")} == {
        "train": ["img/0.png", "img/1.png", "img/2.png"], "validation": ["img/3.png"], "test": ["img/4.png", "img/5.png"]}


def test_corrupt_records_and_undecodable_images_in_shards_are_skipped_and_counted(caption_folder, tmp_path):
    examples = read_caption_file(caption_folder / "captions.jsonl")
    write_tfrecord_shards(examples[:2], tmp_path / "good", num_shards=1)
    bad_image = [{**examples[2], "image_path": str(tmp_path / "bad.png")}]
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    write_tfrecord_shards(bad_image + examples[3:], tmp_path / "bad", num_shards=1)
    (tmp_path / "shards").mkdir()
    (tmp_path / "good" / "data-00000-of-00001.tfrecord").rename(tmp_path / "shards" / "a.tfrecord")
    (tmp_path / "bad" / "data-00000-of-00001.tfrecord").rename(tmp_path / "shards" / "b.tfrecord")
    # a third shard: one good record, then a record whose checksum no longer matches its data
    write_tfrecord_shards(examples[:2], tmp_path / "torn", num_shards=1)
    torn = bytearray((tmp_path / "torn" / "data-00000-of-00001.tfrecord").read_bytes())
    torn[-10] ^= 0xFF
    (tmp_path / "shards" / "c.tfrecord").write_bytes(bytes(torn))

    messages = []
    check = ImageCheck(log=messages.append)
    config = DataConfig(source=str(tmp_path / "shards" / "*.tfrecord"), image_size=8, validation_fraction=0.0)
    assert _scenes(config, "train", check) == ["img/0.png", "img/0.png", "img/1.png", "img/3.png"]
    assert len(check.skipped) == 2 and check.summary().startswith("skipped 2")
    assert any("b.tfrecord: record 0" in m and "TensorFlow cannot decode" in m for m in messages)
    assert any("c.tfrecord: record 1" in m and "corrupt record" in m for m in messages)
    _scenes(config, "validation", check)  # another split: scanned once, reported once
    assert len(messages) == 2
    with pytest.raises(TfmmError, match=r"b\.tfrecord: record 0: unreadable image"):
        _scenes(config, "train", ImageCheck(strict=True))
