import json

import pytest


@pytest.fixture
def smoke_run(tmp_path):
    """Runs one benchmark suite in smoke mode (tiny settings) in this process; returns its JSON record."""
    from tools.bench.__main__ import main

    def run(suite):
        assert main([suite, "--smoke", "--output", str(tmp_path)]) == 0
        data = json.loads((tmp_path / f"{suite}.json").read_text())
        assert data["suite"] == suite and data["smoke"] is True and data["commit"] and isinstance(data["dirty"], bool)
        assert data["machine"]["cpu"] and data["machine"]["cores"] >= 1 and len(data["config_hash"]) == 16
        assert data["command"].startswith(f"python -m tools.bench {suite}") and data["tables"]
        for table in data["tables"]:
            assert table["rows"] and all(len(row) == len(table["columns"]) for row in table["rows"]), table["title"]
        return data

    return run
