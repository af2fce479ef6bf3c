"""Bench records and BENCHMARKS.md rendered from them. (Every suite running end to end on tiny settings is
CI's second step, `python -m tools.bench all --smoke`, which checks each record as it is written.)"""

import json

import pytest

from tools.bench.harness import Report, check_record
from tools.bench.render import render


def test_a_record_says_where_its_numbers_come_from_and_a_bad_one_is_refused(tmp_path):
    report = Report("vqa", "python -m tools.bench vqa --smoke", {"seeds": [0]}, smoke=True)
    report.table("Accuracy", ["seed", "accuracy"], [[0, 0.5]])
    data = json.loads(report.write(tmp_path).read_text())
    assert data["suite"] == "vqa" and data["smoke"] is True and data["commit"] and isinstance(data["dirty"], bool)
    assert data["machine"]["cpu"] and data["machine"]["cores"] >= 1 and len(data["config_hash"]) == 16
    for broken, named in [({"tables": []}, "tables"), ({"command": "python other.py"}, "command"),
                          ({"tables": [{"title": "T", "columns": ["a", "b"], "rows": [[1]]}]}, "table 'T'"),
                          ({"machine": {"cpu": "", "cores": 2}}, "machine")]:
        with pytest.raises(ValueError, match=f"bench record vqa: bad or missing {named}"):
            check_record({**data, **broken})
    with pytest.raises(ValueError):
        Report("vqa", "python -m tools.bench vqa", {}, smoke=True).write(tmp_path / "empty")  # no tables
    assert not (tmp_path / "empty" / "vqa.json").exists()


def test_benchmarks_md_is_rendered_from_the_records_and_the_notes(tmp_path):
    record = {"suite": "vqa", "command": "python -m tools.bench vqa --seeds 0", "commit": "abc123def456", "dirty": True,
              "smoke": False, "date": "2026-11-29 08:00 UTC", "minutes": 12.5, "config_hash": "0123456789abcdef",
              "settings": {}, "summary": {}, "machine": {"cpu": "Test CPU", "flags": ["avx512_bf16"], "cores": 2,
                                                        "python": "3.11", "tensorflow": "2.21", "keras": "3.15"},
              "tables": [{"title": "Accuracy", "columns": ["seed", "accuracy"], "rows": [[0, 0.9987]], "note": "Target ≥ 0.995."}]}
    (tmp_path / "vqa.json").write_text(json.dumps(record))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "vqa.md").write_text("Written by a person.")
    text = render(tmp_path, tmp_path / "BENCHMARKS.md").read_text()
    assert "## vqa" in text and "`python -m tools.bench vqa --seeds 0`" in text
    assert "commit `abc123def456` with uncommitted changes" in text and "Test CPU (avx512_bf16)" in text
    assert "| seed | accuracy |\n|---|---|\n| 0 | 0.9987 |" in text and "Target ≥ 0.995." in text
    assert text.index("### Notes (written by hand)") < text.index("Written by a person.")
