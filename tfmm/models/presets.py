"""Presets: a trained task saved as a keras-hub preset directory, and loading any of them back.

A preset holds `task.json` (the task with its backbone and preprocessor configs), `config.json` and
`model.weights.h5` (the backbone), `task.weights.h5` (the task's own weights, when it has any),
`preprocessor.json`, `tokenizer.json` with `assets/tokenizer/vocabulary.txt`, `image_converter.json`
and `metadata.json`. It is all anyone needs to use the model:

    import tfmm.models
    task = tfmm.models.from_preset("runs/vqa/20261129-101500/preset")
    task.answer(images, ["what color is the shape?"])
"""

import json
import os
import shutil
from pathlib import Path

import keras

from tfmm.errors import TfmmError

PRESET_DIR = "preset"  # inside a run directory


def preset_path(path):
    """The preset directory `path` names: a preset itself, or a run directory holding one."""
    path = Path(path).expanduser()
    if (path / PRESET_DIR / "task.json").is_file():
        return path / PRESET_DIR
    if (path / "task.json").is_file():
        return path
    if not path.exists():
        raise TfmmError(f"model not found: {path}")
    raise TfmmError(f"{path} is not a tfmm preset or a run directory with one (no task.json)")


def from_preset(path):
    """Loads any tfmm task from a preset directory (or a run directory holding `preset/`)."""
    import tfmm.models  # noqa: F401  (registers every task class)
    from tfmm.models.task import Task

    path = preset_path(path)
    name = json.loads((path / "task.json").read_text()).get("registered_name", "")
    cls = keras.saving.get_registered_object(name)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TfmmError(f"{path}/task.json names {name!r}, which is not a tfmm task")
    return cls.from_preset(str(path))


def save_preset(task, path):
    """Writes `task` as a preset at `path`, atomically: into a temporary directory beside it that is
    renamed into place, so a reader sees the old preset or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = path.with_name(f".{path.name}.tmp-{os.getpid()}"), path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        task.save_to_preset(str(tmp))
        for folder, _, files in os.walk(tmp):
            for name in files:
                if name.endswith(".json"):
                    _float32_policies(Path(folder) / name)
                with open(os.path.join(folder, name), "rb") as handle:
                    os.fsync(handle.fileno())
        if path.exists():
            os.rename(path, old)
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def _float32_policies(path):
    """Writes a mixed-precision policy in a preset's config as float32 (the variables are float32 anyway):
    keras-hub's `from_preset` cannot read a "mixed_bfloat16" dtype back, and a loader chooses its own policy."""

    def fix(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and str(node.get("config", {}).get("name", "")).startswith("mixed_"):
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {key: fix(value) for key, value in node.items()}
        return [fix(value) for value in node] if isinstance(node, list) else node

    data = json.loads(path.read_text())
    fixed = fix(data)
    if fixed != data:
        path.write_text(json.dumps(fixed, indent=4))
