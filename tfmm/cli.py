"""Command-line plumbing shared by the apps: subcommands, --config/--set, one-line user errors."""

import argparse
import json
import sys
import time
from pathlib import Path

from tfmm.config import load_config
from tfmm.errors import TfmmError
from tfmm.files import atomic_write


def add_config_arguments(parser, app_name):
    default = Path("apps") / f"{app_name}.toml"
    parser.add_argument("--config", default=str(default) if default.is_file() else None,
                        help=f"TOML config (default: {default} when present, else built-in defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set model.image_encoder=vit (repeatable)")
    parser.add_argument("--strategy", help="tf.distribute strategy: auto, default, mirrored, multi_worker, tpu")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_bfloat16 on CPU/TPU, mixed_float16 on GPU")
    parser.add_argument("--jit-compile", action="store_true", help="compile train steps with XLA")
    parser.add_argument("--strict", action="store_true", help="fail on the first unreadable image instead of skipping it")


def add_command(subparsers, name, handler, help_text, app_name, model=True, output=False):
    """A subcommand with the config arguments, and optionally --model (a run directory) and --output."""
    parser = subparsers.add_parser(name, help=help_text)
    add_config_arguments(parser, app_name)
    if model:
        parser.add_argument("--model", help=f"run directory (default: the latest under runs/{app_name})")
    if output:
        parser.add_argument("--output", help="write the results as JSON to this file")
    parser.set_defaults(handler=handler)
    return parser


class AppParser:
    """An app's command line: the config arguments, the main job when no subcommand is given,
    `train` (with --run-dir to resume), and the app's own subcommands via `command`."""

    def __init__(self, app_name, description, main_job, train):
        self.app_name = app_name
        self.parser = argparse.ArgumentParser(prog=f"python -m tfmm.apps.{app_name}", description=description)
        add_config_arguments(self.parser, app_name)
        self.parser.set_defaults(handler=main_job)
        self.subparsers = self.parser.add_subparsers(dest="command")
        self.command("train", train, "train a model", model=False).add_argument(
            "--run-dir", help="run directory; an interrupted run given here resumes from its last backup")

    def command(self, name, handler, help_text, model=True, output=False):
        return add_command(self.subparsers, name, handler, help_text, self.app_name, model, output)


def resolve_config(config_cls, args):
    """The config from file and --set, with the shortcut flags applied on top."""
    overrides = list(args.set)
    if getattr(args, "strategy", None):
        overrides.append(f"train.strategy={args.strategy}")
    if getattr(args, "mixed_precision", False):
        overrides.append("train.mixed_precision=true")
    if getattr(args, "jit_compile", False):
        overrides.append("train.jit_compile=true")
    if getattr(args, "strict", False):
        overrides.append("data.strict=true")
    return load_config(config_cls, args.config, overrides)


def write_json(path, data):
    """Writes metrics as JSON (to a temporary name first) and echoes where they went."""
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")


def print_metrics(title, metrics):
    print(f"\n{title}")
    width = max(len(k) for k in metrics) if metrics else 0
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"  {key:<{width}}  {shown}")


def run_dir(output_dir, task):
    path = Path(output_dir) / task / time.strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while path.exists():
        path = path.with_name(f"{path.name.split('.')[0]}.{suffix}")
        suffix += 1
    return path


def latest_run(output_dir, task):
    root = Path(output_dir) / task
    runs = sorted(p for p in root.glob("*") if (p / "model.keras").is_file()) if root.is_dir() else []
    if not runs:
        raise TfmmError(f"no trained model under {root}; run train first or pass --model")
    return runs[-1]


def main(parser, argv=None):
    """Parses and dispatches to `args.handler`; user mistakes print one line and exit 2."""
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except TfmmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
