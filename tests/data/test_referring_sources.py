"""The referring-segmentation user format: rows read, bad rows named by file and line and skipped, splits by file
or by the hash split of the image."""

import json

import numpy as np
import pytest
from PIL import Image

from tfmm.data import DataChecks
from tfmm.data.referring_sources import load_mask, read_refs_folder
from tfmm.errors import TfmmError


def _write(folder, rows, name="refs.jsonl"):
    (folder / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(40):
        Image.fromarray(np.full((12, 16, 3), i, np.uint8)).save(tmp_path / "images" / f"{i}.png")
        mask = np.zeros((12, 16), np.uint8)
        mask[: i % 5, :] = 255
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    return tmp_path


def test_masks_of_every_allowed_kind_read_as_zero_and_one(tmp_path):
    expected = np.zeros((4, 5), np.uint8)
    expected[1:3, 2:] = 1
    for mode, pixels in [("L", expected * 200), ("RGB", np.stack([expected * 0, expected * 9, expected * 0], -1)),
                         ("1", expected.astype(bool)), ("I;16", expected.astype(np.uint16) * 300)]:
        path = tmp_path / f"{mode.replace(';', '')}.png"
        Image.fromarray(pixels).convert(mode).save(path) if mode == "1" else Image.fromarray(pixels).save(path)
        np.testing.assert_array_equal(load_mask(path.read_bytes()), expected, err_msg=mode)
    Image.fromarray(np.zeros((4, 5, 4), np.uint8)).save(tmp_path / "rgba.png")
    with pytest.raises(ValueError, match="mode RGBA; a single-channel or RGB PNG is needed"):
        load_mask((tmp_path / "rgba.png").read_bytes())
    Image.fromarray(expected).save(tmp_path / "m.jpg")
    with pytest.raises(ValueError, match="JPEG file, not a PNG"):
        load_mask((tmp_path / "m.jpg").read_bytes())


def test_bad_rows_are_named_by_line_and_skipped_and_good_ones_kept(folder):
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "masks" / "small.png")
    (folder / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    rows = [{"image": f"images/{i}.png", "mask": f"masks/{i}.png", "text": f"thing {i}"} for i in range(40)]
    rows[3] = {"image": "images/3.png", "text": "no mask"}
    rows[5]["text"] = "  "
    rows[7]["mask"] = "masks/small.png"
    rows[9]["image"] = "images/broken.png"
    rows[11]["mask"] = "masks/none.png"
    _write(folder, rows)
    logged = []
    checks = DataChecks(log=logged.append)
    examples = [e for split in ("train", "validation", "test") for e in read_refs_folder(folder, split, checks)]
    assert sorted(e["text"] for e in examples) == sorted(f"thing {i}" for i in range(40) if i not in (3, 5, 7, 9, 11))
    joined = "\n".join(logged)
    for line, reason in [(4, "missing field 'mask'"), (6, "empty text"), (8, "is 5×5 but image"),
                         (10, "unreadable image"), (12, "mask file not found")]:
        assert f"refs.jsonl:{line}: " in joined and reason in joined, (line, reason, joined)
    assert len(checks.rows.skipped) == 5  # each bad row once, though three splits read the file
    with pytest.raises(TfmmError, match=r"refs.jsonl:4: missing field 'mask' \(strict mode\)"):
        read_refs_folder(folder, "train", DataChecks(strict=True))


def test_hash_split_keeps_all_expressions_of_an_image_together_and_split_files_win(folder):
    rows = [{"image": f"images/{i // 2}.png", "mask": f"masks/{i // 2}.png", "text": f"thing {i}"} for i in range(80)]
    _write(folder, rows)
    splits = {s: read_refs_folder(folder, s, DataChecks()) for s in ("train", "validation", "test")}
    by_image = {}
    for split, examples in splits.items():
        for e in examples:
            by_image.setdefault(e["scene"], set()).add(split)
    assert all(len(s) == 1 for s in by_image.values()) and len(by_image) == 40
    assert sum(len(e) for e in splits.values()) == 80
    _write(folder, rows[:10], "train.jsonl")
    _write(folder, rows[10:12], "test.jsonl")
    assert len(read_refs_folder(folder, "train", DataChecks())) == 10
    with pytest.raises(TfmmError, match="has split files but no validation.jsonl"):
        read_refs_folder(folder, "validation", DataChecks())
