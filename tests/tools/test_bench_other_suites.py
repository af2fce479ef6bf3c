"""The other half of the benchmark suites in smoke mode, and BENCHMARKS.md rendered from their records."""

import json

import pytest

from tools.bench.render import render


@pytest.mark.parametrize("suite", ["caption", "generate", "retrieval", "scaling"])
def test_suite_runs_in_smoke_mode(smoke_run, suite):
    data = smoke_run(suite)
    if suite == "retrieval":
        assert {"text_to_image_recall_at_1", "train_seconds"} <= set(data["summary"])


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
