"""Referring data from easy-VQA images (masks from their pixels) and from RefCOCO-style COCO JSON (masks from
polygons and RLE through pycocotools), checked against masks drawn independently."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tfmm.apps.segment import SegmentDataConfig
from tfmm.data import DataChecks, easy_vqa
from tfmm.data.referring_coco import read_coco_refs
from tfmm.data.referring_easy_vqa import easy_vqa_referring, image_expressions, shape_mask
from tfmm.data.referring_sources import load_referring


def _iou(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("colour", ["yellow", "gray", "black", "teal"])
def test_shape_mask_recovers_an_antialiased_disc(colour):
    """A disc drawn 4× larger and box-downsampled, as easy-VQA draws: its mask is the disc's area-downsampled
    coverage (more than half of a pixel covered)."""
    big = Image.new("RGB", (256, 256), (240, 236, 250))
    draw = ImageDraw.Draw(big)
    draw.ellipse([40, 60, 160, 180], fill=easy_vqa.COLOURS[colour])
    pixels = np.asarray(big.resize((64, 64), Image.Resampling.BOX))
    cover = Image.fromarray(np.zeros((256, 256), np.uint8))
    ImageDraw.Draw(cover).ellipse([40, 60, 160, 180], fill=1)
    coverage = np.asarray(cover, np.float32).reshape(64, 4, 64, 4).mean((1, 3))
    mask = shape_mask(pixels, easy_vqa.COLOURS[colour])
    clear = (coverage < 0.3) | (coverage > 0.7)  # edge pixels near half covered may round either way
    np.testing.assert_array_equal(mask[clear], coverage[clear] > 0.5)
    assert _iou(mask, coverage > 0.5) > 0.97


def test_easy_vqa_expressions_name_the_shape_or_nothing(tmp_path):
    easy_vqa.generate(tmp_path, 12, seed=5)
    rows = json.loads((tmp_path / "questions.json").read_text())
    examples = easy_vqa_referring(str(tmp_path), None, 0.1, DataChecks(), 64)
    by_image = {}
    for e in examples:
        by_image.setdefault(e["image_path"], []).append(e)
    assert len(by_image) == 12
    for path, group in by_image.items():
        image_id = int(path.rsplit("/", 1)[1].split(".")[0])
        qa = [(q, a) for q, a, i in rows if i == image_id]
        colour, shape = easy_vqa.scene_from_questions(*zip(*qa))
        named = [e for e in group if e["kind"] == "attribute"]
        assert len(named) == 4 and len(group) == 6
        for e in group:  # a reader: the text names the image's shape only with its own colour and shape words
            words = set(e["text"].split())
            fits = words & set(easy_vqa.COLOURS) <= {colour} and words & set(easy_vqa.SHAPES) <= {shape}
            assert fits == (e["kind"] == "attribute"), e["text"]
            assert e["mask"].any() == fits
        pixels = np.asarray(Image.open(path).convert("RGB"))
        np.testing.assert_array_equal(named[0]["mask"], shape_mask(pixels, easy_vqa.COLOURS[colour]))
    # The expressions of one image are the same on every read (drawn from its id).
    assert image_expressions("7", "red", "circle") == image_expressions("7", "red", "circle")


def test_load_referring_reads_an_easy_vqa_folder_at_the_model_size(tmp_path):
    easy_vqa.generate(tmp_path, 6, seed=2)
    data = dataclasses.replace(SegmentDataConfig(), source=str(tmp_path), image_size=32)
    batch = next(load_referring(data, None, DataChecks()).batch(100).as_numpy_iterator())
    assert batch["image"].shape == (36, 32, 32, 3) and batch["mask"].shape == (36, 32, 32)
    assert set(batch["kind"]) == {b"attribute", b"no_target"}


def _coco_file(tmp_path):
    from pycocotools import mask as coco_mask

    (tmp_path / "images").mkdir()
    masks = []
    for i in range(3):
        Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)).save(tmp_path / "images" / f"{i}.jpg")
    square = np.zeros((24, 24), np.uint8)
    square[2:10, 4:14] = 1  # what the polygon through the pixel corners (4, 2)–(14, 10) covers
    blob = np.zeros((24, 24), np.uint8)
    blob[12:18, 20:29] = 1
    rle = coco_mask.encode(np.asfortranarray(blob))
    rle["counts"] = rle["counts"].decode()
    annotations = [
        {"id": 1, "image_id": 0, "segmentation": [[4, 2, 14, 2, 14, 10, 4, 10]]},  # polygon of the square
        {"id": 2, "image_id": 0, "segmentation": rle},  # compressed RLE of the blob
        {"id": 3, "image_id": 1, "segmentation": {"size": [24, 24], "counts": [96, 48, 432]}},  # uncompressed RLE
    ]
    refs = [
        {"image_id": 0, "ann_id": 1, "split": "train", "sentences": [{"sent": "the square"}, "the top box"]},
        {"image_id": 0, "ann_id": [1, 2], "split": "val", "sentences": [{"sent": "both things"}]},
        {"image_id": 1, "ann_id": 3, "split": "testA", "sentences": [{"sent": "the stripe"}]},
        {"image_id": 2, "ann_id": None, "split": "testB", "sentences": [{"sent": "a dog"}]},
        {"image_id": 9, "ann_id": 1, "sentences": [{"sent": "no such image"}]},
        {"image_id": 1, "ann_id": 1, "sentences": [{"sent": "another image's object"}]},
        {"image_id": 2, "ann_id": None, "sentences": [{"sent": " "}]},
    ]
    images = [{"id": i, "file_name": f"{i}.jpg", "height": 24, "width": 24} for i in range(3)]
    path = tmp_path / "refs.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "refs": refs}))
    stripe = np.zeros((24, 24), np.uint8)
    stripe[:, 4:6] = 1  # RLE runs are column-major: 96 zeros (columns 0–3), then columns 4 and 5
    masks = {"square": square, "blob": blob, "stripe": stripe}
    return path, masks


def test_coco_refs_decode_polygons_and_rle_and_name_bad_refs(tmp_path, capsys):
    path, masks = _coco_file(tmp_path)
    examples = read_coco_refs(path, DataChecks(), 24)  # the images' own size: masks exactly as decoded
    got = {e["text"]: e for e in examples}
    assert set(got) == {"the square", "the top box", "both things", "the stripe", "a dog"}
    assert [got[t]["split"] for t in ("the square", "both things", "the stripe", "a dog")] == \
        ["train", "validation", "test", "test"]
    np.testing.assert_array_equal(got["the square"]["mask"], masks["square"])
    np.testing.assert_array_equal(got["the top box"]["mask"], masks["square"])
    np.testing.assert_array_equal(got["both things"]["mask"], masks["square"] | masks["blob"])
    np.testing.assert_array_equal(got["the stripe"]["mask"], masks["stripe"])
    assert not got["a dog"]["mask"].any()
    out = capsys.readouterr().out
    assert "refs[4]: unknown image_id 9" in out and "refs[5]: ann_id 1 is not an annotation of image 1" in out
    assert "refs[6]: no non-empty sentence" in out


def test_coco_refs_splits_come_from_the_refs_and_masks_shrink_as_images(tmp_path):
    path, masks = _coco_file(tmp_path)
    data = dataclasses.replace(SegmentDataConfig(), source=str(path), image_size=12)
    test = list(load_referring(data, "test", DataChecks()).as_numpy_iterator())
    assert sorted(e["text"] for e in test) == [b"a dog", b"the stripe"]
    assert {e["kind"] for e in test} == {b"target", b"no_target"} and test[0]["image"].shape == (12, 12, 3)
    train = list(load_referring(data, "train", DataChecks()).as_numpy_iterator())
    halved = masks["square"].reshape(12, 2, 12, 2).mean((1, 3)) > 0.5
    np.testing.assert_array_equal(train[0]["mask"], halved)
