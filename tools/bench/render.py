"""`BENCHMARKS.md` from `benchmarks/*.json` (what the suites measured) and `benchmarks/notes/*.md` (what a
person wrote about them)."""

import json
from pathlib import Path

from tools.bench.harness import RESULTS, ROOT, render_table

ORDER = ("retrieval", "peer", "fusion", "serving", "scaling", "vqa", "classify", "caption", "generate", "gan", "segment", "assistant")
HEADER = """# Benchmarks

Rendered by `python -m tools.bench render` from `benchmarks/<suite>.json`, which `python -m tools.bench <suite>`
writes (never edit the tables here by hand); the notes under each suite come from `benchmarks/notes/<suite>.md`.
Every section names the command, the commit and the machine its numbers come from. Times depend on the machine
(its CPU model and flags are recorded); compare ratios measured in one run, not absolute times across runs.
"""


def render(results=RESULTS, output=ROOT / "BENCHMARKS.md"):
    sections = [HEADER]
    files = {p.stem: p for p in Path(results).glob("*.json")}
    for suite in [s for s in ORDER if s in files] + sorted(set(files) - set(ORDER)):
        data = json.loads(files[suite].read_text())
        m = data["machine"]
        flags = ", ".join(m["flags"]) or "none of AVX-512 bf16 / AMX"
        lines = [f"## {suite}", "",
                 f"Command: `{data['command']}`  ",
                 f"Code: commit `{data['commit']}`{' with uncommitted changes' if data['dirty'] else ''}, "
                 f"settings hash `{data['config_hash']}`, {data['date']}, {data['minutes']} min  ",
                 f"Machine: {m['cpu']} ({flags}), {m['cores']} cores, Python {m['python']}, TensorFlow {m['tensorflow']}, "
                 f"Keras {m['keras']}" + _onednn(m.get("TF_ENABLE_ONEDNN_OPTS")), ""]
        for table in data["tables"]:
            lines += [f"### {table['title']}", ""]
            if table.get("note"):
                lines += [table["note"], ""]
            lines += [render_table(table), ""]
        notes = Path(results) / "notes" / f"{suite}.md"
        if notes.is_file():
            lines += ["### Notes (written by hand)", "", notes.read_text().strip(), ""]
        sections.append("\n".join(lines))
    Path(output).write_text("\n".join(sections).rstrip() + "\n")
    print(f"wrote {output}")
    return output


def _onednn(setting):
    """The record's oneDNN setting: a value, or "unset" for records taken before tfmm set it to 1 (TensorFlow's
    choice then: on only with AVX-512 VNNI/BF16 or AMX)."""
    if setting is None:
        return ""
    return f", TF_ENABLE_ONEDNN_OPTS={setting}" if setting.isdigit() else f", TF_ENABLE_ONEDNN_OPTS {setting}"
