import json

import pytest

from tfmm.apps.classify import ClassifyDataConfig
from tfmm.data import ImageCheck, RowCheck
from tfmm.data.labelled_pairs import read_rows, read_table
from tfmm.errors import TfmmError


def test_jsonl_and_csv_tables_read_alike(tmp_path):
    rows = [{"image": "a.png", "text": "hello", "label": "x"}, {"image": "b.png", "text": "bye", "label": "y"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "t.csv").write_text("image,text,label\na.png,hello,x\nb.png,bye,y\n")
    columns, jsonl = read_table(tmp_path / "t.jsonl")
    assert columns == ["image", "text", "label"] and [r for _, r in jsonl] == rows
    _, csv_rows = read_table(tmp_path / "t.csv")
    assert [r for _, r in csv_rows] == rows and [n for n, _ in csv_rows] == [2, 3]  # file line numbers


def test_bad_tables_name_the_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"image": "a.png"}\n{not json}\n')
    with pytest.raises(TfmmError, match=r"bad\.jsonl:2: invalid JSON"):
        read_table(tmp_path / "bad.jsonl")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(TfmmError, match=r"must be a \.csv or \.jsonl"):
        read_table(tmp_path / "x.txt")
    (tmp_path / "t.csv").write_text("image,text\na.png,hello\n")
    data = ClassifyDataConfig(source=str(tmp_path / "t.csv"), label_columns=["label"])
    with pytest.raises(TfmmError, match=r"column\(s\) label missing \(it has image, text\)"):
        read_rows(data, "train", ImageCheck(), RowCheck())


def test_the_hash_split_stays_when_the_folder_moves(tmp_path):
    """The split key is the image path as the table writes it, not where the folder happens to be."""
    from PIL import Image

    splits = []
    for folder in (tmp_path / "here", tmp_path / "moved" / "elsewhere"):
        (folder / "images").mkdir(parents=True)
        lines = ["image,text,label"]
        for index in range(40):
            Image.new("RGB", (4, 4)).save(folder / "images" / f"{index}.png")
            lines.append(f"images/{index}.png,text {index},x")
        (folder / "t.csv").write_text("\n".join(lines) + "\n")
        data = ClassifyDataConfig(source=str(folder / "t.csv"), label_columns=["label"], validation_fraction=0.2)
        splits.append({split: sorted(p.split("images/")[1] for p, _, _ in read_rows(data, split, ImageCheck(), RowCheck()))
                       for split in ("train", "validation", "test")})
    assert splits[0] == splits[1]
    assert all(splits[0].values()) and sum(len(v) for v in splits[0].values()) == 40
