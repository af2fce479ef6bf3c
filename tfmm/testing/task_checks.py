"""The checks every task passes, as keras-hub's `TestCase.run_task_test` does for its models:

1. `.keras` round trip: saved and loaded with `safe_mode=True`, it is the same class and gives the same outputs;
2. `fit` on a `tf.data` pipeline of raw batches (the task's preprocessor maps them) changes the weights
   and gives a finite loss;
3. raw-input prediction (`predict`, Python source using `task` and `inputs`) gives the same from the task's
   preset loaded in a fresh process that never imports an app or reads a config;
4. export: the SavedModel runs in that process before tfmm is imported, and its signatures on raw inputs
   give what the task gives (compared by the caller).
"""

import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfmm.models import from_preset, save_preset

ROOT = Path(__file__).resolve().parents[2]


def _numpy(value):
    if isinstance(value, dict):
        return {k: _numpy(v) for k, v in value.items()}
    return keras.ops.convert_to_numpy(value)


def check_keras_round_trip(task, inputs, atol=1e-5):
    """`inputs`: preprocessed model inputs."""
    expected = _numpy(task(inputs, training=False))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "task.keras")
        task.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert type(loaded) is type(task), (type(loaded), type(task))
    got = _numpy(loaded(inputs, training=False))
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=atol, err_msg=key)
    return loaded


def check_fit(task, raw_batches, steps=2):
    """`raw_batches`: a `tf.data.Dataset` of raw `(x, y, sample_weight)` batches. The steps run eagerly (the
    preprocessor still maps the batches inside `tf.data`): tracing a train step costs 7–14 s on 2 cores, and the
    apps' tests train in graph mode."""
    before = [w.copy() for w in task.get_weights()]
    task.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False, run_eagerly=True)
    history = task.fit(raw_batches.repeat(), steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False).history
    losses = [key for key in history if key.endswith("loss")]  # a GAN logs d_loss and g_loss
    assert losses and all(np.isfinite(history[key][-1]) for key in losses), history
    changed = [not np.array_equal(a, b) for a, b in zip(before, task.get_weights())]
    assert any(changed), "fit changed no weight"
    return history


def _as_json(value):
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# One new interpreter checks both ways of using a trained model: first the exported SavedModel, with
# TensorFlow and TF Text only (tfmm not imported, as in TF Serving); then `tfmm.models.from_preset` for each
# preset, in a process that never imported an app or read a config.
_FRESH = """
import base64, json, pickle, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the tokenizer's ops, which TF Serving links in)
checks = pickle.load(open({inputs!r}, "rb"))

def text(value):  # strings as text; binary outputs (PNG images) as "base64:…"
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()

def as_json(value):
    if isinstance(value, dict):
        return {{k: as_json(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value

served = {{}}
if checks["saved_model"]:
    model = tf.saved_model.load(checks["saved_model"])
    for name, feed in checks["signatures"].items():
        outputs = model.signatures[name](**{{k: tf.constant(v) for k, v in feed.items()}})
        served[name] = {{k: (np.vectorize(text)(v.numpy()) if v.dtype == tf.string else v.numpy()).tolist()
                        for k, v in outputs.items()}}
assert not [m for m in sys.modules if m.startswith("tfmm")], "tfmm was imported for the SavedModel"
import tfmm.models
results = {{}}
for name, (path, predict, inputs) in checks["presets"].items():
    task = tfmm.models.from_preset(path)
    results[name] = as_json(eval(predict, {{"task": task, "inputs": inputs, "np": np}}))
apps = [m for m in sys.modules if m.startswith("tfmm.apps")]
assert not apps, apps
print(json.dumps({{"presets": results, "served": served}}))
"""


def check_in_fresh_process(cases, folder, version_dir=None, signatures=None):
    """Saves each task of `cases` ({name: (task, predict, inputs)}) as a preset and, in one new interpreter:
    runs `signatures` ({signature: raw inputs}) of the SavedModel at `version_dir` without tfmm imported,
    then loads every preset with `tfmm.models.from_preset` (no app imported) and evaluates its `predict`
    (Python source using `task` and `inputs`), which must equal the same expression here. Returns the
    SavedModel's outputs per signature (strings decoded; binary ones as "base64:…") for the caller to compare."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    presets, expected = {}, {}
    for name, (task, predict, inputs) in cases.items():
        path = save_preset(task, folder / name)
        assert type(from_preset(path)) is type(task)
        presets[name] = (str(path), predict, inputs)
        expected[name] = _as_json(eval(predict, {"task": task, "inputs": inputs, "np": np}))  # noqa: S307  (test code)
    if version_dir is not None:
        for file in ("saved_model.pb", "variables", "assets.extra/tfmm_config.toml"):
            assert (Path(version_dir) / file).exists(), file
    with open(folder / "checks.pkl", "wb") as handle:
        pickle.dump({"saved_model": str(version_dir or ""), "signatures": signatures or {}, "presets": presets}, handle)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", _FRESH.format(inputs=str(folder / "checks.pkl"))], capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    for name in cases:
        assert got["presets"][name] == expected[name], (name, got["presets"][name], expected[name])
    return got["served"]


def raw_dataset(x, y=None, sample_weight=None, batch_size=2):
    """A `tf.data` pipeline of raw batches from in-memory raw examples."""
    parts = tuple(p for p in (x, y, sample_weight) if p is not None)
    return tf.data.Dataset.from_tensor_slices(parts if len(parts) > 1 else parts[0]).batch(batch_size)
