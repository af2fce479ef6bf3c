"""Train one app's default config (its apps/<app>.toml, plus --set overrides) and print its scores on splits:
the quick check that a change keeps an app's accuracy, between full bench runs.

    python -m tools.train_and_score retrieval --splits test --set train.seed=1 --folder /tmp/check

Prints one line, `RESULT {json}`: training seconds, the last epoch's losses, each split's numeric metrics and
per-group tables (the assistant's per intent and turn), and the retrieval app's zero-shot scores on its held-out
combinations. Runs and exports go under --folder.
"""

import argparse
import csv
import importlib
import json
from pathlib import Path

from tools.bench.harness import app_config, timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", help="retrieval, vqa, classify, segment, caption, assistant, ...")
    parser.add_argument("--splits", default="test", help="comma-separated splits to score")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--folder", type=Path, required=True, help="where runs and exports go")
    args = parser.parse_args()

    import tfmm  # noqa: F401  (TensorFlow without its start-up lines)
    from tfmm.apps.runner import App

    module = importlib.import_module(f"tfmm.apps.{args.app}")
    app = next(v for v in vars(module).values() if isinstance(v, type) and issubclass(v, App) and v is not App
               and v.__module__ == module.__name__)()
    config, runner = app_config(app, args.set, args.folder)
    task, seconds = timed(lambda: app.train(runner, config))  # the app's own training (the assistant: two stages)
    result = {"seconds": round(seconds)}
    history = sorted(args.folder.glob("runs/**/history.csv"))
    if history:
        with open(history[-1], newline="") as f:
            last = list(csv.DictReader(f))[-1]
        result["last_epoch"] = {k: round(float(v), 4) for k, v in last.items() if "loss" in k}
    for split in args.splits.split(","):
        result[split] = {k: v for k, v in app.evaluate(task, config, split).items() if _reportable(v)}
    if hasattr(app, "zero_shot") and config.data.source == "shapes":
        result["zero_shot_heldout"] = {k: v for k, v in app.zero_shot(task, config).items() if "accuracy" in k}
    print("RESULT", json.dumps(result))


def _reportable(value):
    """A number, or a per-group table of numbers ({group: {metric: number}}, e.g. the assistant's per intent)."""
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, dict) and bool(value) and all(
        isinstance(row, dict) and all(isinstance(v, (int, float)) for v in row.values()) for row in value.values())


if __name__ == "__main__":
    from tfmm.quiet import known_notices_filtered

    with known_notices_filtered():
        main()
