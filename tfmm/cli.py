"""Command-line plumbing shared by the apps: subcommands, --config/--set, one-line user errors."""

import argparse
import json
import sys
import time
from pathlib import Path

from tfmm.errors import TfmmError
from tfmm.files import atomic_write
from tfmm.quiet import known_notices_filtered


def add_config_arguments(parser, app_name):
    parser.add_argument("--config", help=f"TOML config (default: apps/{app_name}.toml when present, else built-in "
                                          "defaults; for a trained model, the config it was trained with)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set model.image_encoder=vit (repeatable)")
    parser.add_argument("--strategy", help="tf.distribute strategy: auto, default, mirrored, multi_worker, tpu")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_bfloat16 on CPU/TPU, mixed_float16 on GPU")
    parser.add_argument("--jit-compile", action="store_true", help="compile train steps with XLA")
    parser.add_argument("--strict", action="store_true", help="fail on the first unreadable image or row instead of skipping it, "
                                                              "and fail an export whose TFLite file misses its parity threshold")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and C++ log lines (hidden otherwise, see tfmm.quiet)")


class AppParser:
    """An app's command line: the config arguments, the main job when no subcommand is given, and
    subcommands (`command`); `--model` takes a preset or a run directory."""

    def __init__(self, app_name, description, main_job):
        self.app_name = app_name
        self.parser = argparse.ArgumentParser(prog=f"python -m tfmm.apps.{app_name}", description=description)
        add_config_arguments(self.parser, app_name)
        self.parser.set_defaults(handler=main_job)
        self.subparsers = self.parser.add_subparsers(dest="command")

    def command(self, name, handler, help_text, model=True, output=False):
        parser = self.subparsers.add_parser(name, help=help_text)
        add_config_arguments(parser, self.app_name)
        if model:
            parser.add_argument("--model", help=f"a preset or a run directory (default: the latest run under runs/{self.app_name})")
        if output:
            parser.add_argument("--output", help="write the results as JSON to this file")
        parser.set_defaults(handler=handler)
        return parser


# Flags that stand for a config value: name -> (section, type, help). Given, each becomes `--set section.name=value`
# and goes through the same checks as the rest of the config.
SAMPLING_FLAGS = {
    "temperature": ("sampling", float, "sampling temperature (> 0)"),
    "top_k": ("sampling", int, "keep the k most likely tokens (0 = all)"),
    "top_p": ("sampling", float, "nucleus probability (1 = no cut)"),
    "seed": ("sampling", int, "sampling seed"),
}


def add_shortcut_arguments(parser, shortcuts):
    for name, (section, kind, help_text) in shortcuts.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=f"{help_text}; default {section}.{name}")


def shortcut_overrides(args, shortcuts):
    return [f"{section}.{name}={getattr(args, name)}" for name, (section, _, _) in shortcuts.items()
            if getattr(args, name, None) is not None]


def overrides(args):
    """`--set` values with the shortcut flags applied on top."""
    values = list(getattr(args, "set", []))
    if getattr(args, "strategy", None):
        values.append(f"train.strategy={args.strategy}")
    if getattr(args, "mixed_precision", False):
        values.append("train.mixed_precision=true")
    if getattr(args, "jit_compile", False):
        values += ["train.jit_compile=true", 'train.xla_fusion="off"']  # whole-step XLA replaces the fusion
    if getattr(args, "strict", False):
        values += ["data.strict=true", "export.parity.strict=true"]
    return values


def write_json(path, data):
    """Writes results as JSON (to a temporary name first) and echoes where they went."""
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")


def print_metrics(title, metrics):
    shown = {key: value for key, value in metrics.items() if not isinstance(value, (dict, list))}
    print(f"\n{title}")
    width = max(len(k) for k in shown) if shown else 0
    for key, value in shown.items():
        text = f"{value:.4f}" if isinstance(value, float) else value
        print(f"  {key:<{width}}  {text}")


def run_dir(output_dir, task):
    path = Path(output_dir) / task / time.strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while path.exists():
        path = path.with_name(f"{path.name.split('.')[0]}.{suffix}")
        suffix += 1
    return path


def latest_run(output_dir, task):
    """The newest run under `output_dir/task` that finished (it holds its preset)."""
    root = Path(output_dir) / task
    runs = sorted(p for p in root.glob("*") if (p / "preset" / "task.json").is_file()) if root.is_dir() else []
    if not runs:
        raise TfmmError(f"no trained model under {root}; run train first or pass --model")
    return runs[-1]


def main(parser, argv=None):
    """Parses and dispatches to `args.handler`; user mistakes print one line and exit 2."""
    args = parser.parse_args(argv)
    with known_notices_filtered():
        try:
            result = args.handler(args)
            # a handler may return what it made (a trained task, a dict) for Python callers; the exit status
            # is only ever an int, else `SystemExit(task)` would print the object and exit 1 after a good run
            return result if isinstance(result, int) and not isinstance(result, bool) else 0
        except TfmmError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
