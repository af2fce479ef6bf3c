"""TF Serving version directories, written atomically.

A version is written to `<base>/<name>/.tmp-<N>-<pid>` (TF Serving ignores names
that are not integers), synced, and renamed to `<base>/<name>/<N>` when complete, so
a poller never loads a half-written version (serving#1086, #631).
"""

import os
import re
import shutil
from pathlib import Path

from tfmm.config import save_config
from tfmm.errors import TfmmError
from tfmm.export.tflite import gate_tflite

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_model_name(name):
    if not NAME.fullmatch(name or "") or ".." in name:
        raise TfmmError(f"invalid model name {name!r}: use letters, digits, '_', '-', '.'")
    return name


def versions(model_dir):
    """Integer version directories under `model_dir`, as TF Serving sees them."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name))


def latest_version_dir(model_dir):
    found = versions(model_dir)
    if not found:
        raise TfmmError(f"no exported versions under {model_dir}")
    return Path(model_dir) / str(found[-1])


def _fsync_tree(root):
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                os.fsync(handle.fileno())


def write_version(base_dir, name, write, version=None):
    """Calls `write(tmp_dir)` then moves `tmp_dir` into place as the next version; returns its path."""
    model_dir = Path(base_dir) / check_model_name(name)
    model_dir.mkdir(parents=True, exist_ok=True)
    version = version or (max(versions(model_dir), default=0) + 1)
    final = model_dir / str(version)
    if final.exists():
        raise TfmmError(f"version {version} of {name} already exists: {final}")
    tmp = model_dir / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        _fsync_tree(tmp)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def task_archive(task, *tracked):
    """An `ExportArchive` tracking the task's preprocessor (built, as `track` requires) and `tracked`
    (default: the task itself)."""
    import keras
    import tensorflow as tf

    preprocessor = task.preprocessor
    if not preprocessor.built:
        preprocessor.build()
    if preprocessor.tokenizer is not None:
        preprocessor.tokenizer(tf.constant(["build"]))
    archive = keras.export.ExportArchive()
    for model in tracked or (task,):
        archive.track(model)
    archive.track(preprocessor)
    return archive


def add_endpoint(archive, names, fn, input_signature):
    """Registers `fn` under each of `names` (`serving_default` and its own name, say), traced once."""
    names = [names] if isinstance(names, str) else list(names)
    traced = archive.add_endpoint(names[0], fn, input_signature=input_signature)
    traced.get_concrete_function()
    for name in names[1:]:
        archive.add_endpoint(name, traced)
    return traced


def write_export(base_dir, name, archive, config, vocabulary, extra_files=None, write_tflite=None):
    """Writes the next version of `name` the way every app exports, and returns its directory.

    The version holds the SavedModel of `archive()` (a `keras.export.ExportArchive`) and `assets.extra/`
    with the resolved config, the vocabulary (if any) and `extra_files` ({file name: text}); with
    `write_tflite(folder)`, also `tflite/` with the `.tflite` files and copies of those text files; a
    quantization whose parity with Keras misses `export.parity` is left out (`gate_tflite`), and the
    parity figures are kept in `assets.extra/tfmm_parity.json` too.
    """
    extra_files = dict(extra_files or {})

    def write(tmp):
        archive().write_out(str(tmp), verbose=False)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        save_config(config, extra / "tfmm_config.toml")
        if vocabulary is not None:
            extra_files["vocabulary.txt"] = "\n".join(vocabulary) + "\n"
        for file_name, text in extra_files.items():
            (extra / file_name).write_text(text, encoding="utf-8")
        if write_tflite:
            write_tflite(tmp / "tflite")
            gate_tflite(tmp / "tflite", config.export.parity)  # strict: raises before the version exists
            shutil.copy(tmp / "tflite" / "parity.json", extra / "tfmm_parity.json")  # served as model metadata
            for file_name in extra_files:
                shutil.copy(extra / file_name, tmp / "tflite" / file_name)

    return write_version(base_dir, name, write)
