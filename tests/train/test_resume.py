"""Kill a training run mid-epoch (SIGKILL), start it again: it resumes from its last backup and ends
with the same number of steps, the same final and best weights as an uninterrupted run; resuming it
with a changed config is refused first."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np


def command(config, run_dir):
    return [sys.executable, "-m", "tfmm.apps.retrieval", "train", "--run-dir", str(run_dir),
            "--set", f"data.data_dir={config.data.data_dir}", "--set", "data.shapes_config=tiny", "--set", "data.image_size=32",
            "--set", "data.batch_size=16", "--set", "model.image_encoder.size=tiny", "--set", "model.text_encoder.size=tiny",
            "--set", "model.embedding_dim=16", "--set", "train.epochs=3", "--set", "train.backup_every_steps=2",
            "--set", "train.deterministic=true", "--set", "export.tflite=false",
            # augmentation on: every draw is keyed by stream position, so the resumed run draws the same
            "--set", "data.augment.flip=true", "--set", "data.augment.color_jitter=0.3", "--set", "data.augment.random_crop=0.2",
            "--set", "data.text_augment.deletion=0.1", "--set", "data.text_augment.synonyms=true"]


def weights(path):
    with h5py.File(path) as handle:
        arrays = []
        handle.visititems(lambda name, item: arrays.append((name, np.asarray(item))) if isinstance(item, h5py.Dataset) else None)
    return dict(arrays)


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tiny_config, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    whole = subprocess.run(command(tiny_config, tmp_path / "whole"), capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "finished at step 18" in whole.stdout  # 96 examples / 16 per batch × 3 epochs
    assert whole.stderr == ""  # a normal run is quiet: no TensorFlow start-up lines, no Keras warnings
    assert f"preset   {tmp_path / 'whole' / 'preset'}" in whole.stdout  # the summary says where things went

    backups = tmp_path / "killed" / "backup" / "chief"
    process = subprocess.Popen(command(tiny_config, tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env, cwd=tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and not (backups / "ckpt-8.index").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # epoch 2 is under way (steps 7-12)
    process.wait()
    assert (backups / "ckpt-8.index").exists(), "no backup was written before the kill"
    assert not (tmp_path / "killed" / "final.weights.h5").exists()

    changed = subprocess.run(command(tiny_config, tmp_path / "killed") + ["--set", "train.epochs=4"], capture_output=True,
                             text=True, timeout=600, env=env, cwd=tmp_path)
    assert changed.returncode == 2 and changed.stderr.count("\n") == 1, changed.stderr[-3000:]
    assert "started with another config (train.epochs: 3 → 4)" in changed.stderr and "--force" in changed.stderr

    resumed = subprocess.run(command(tiny_config, tmp_path / "killed"), capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    step = int(resumed.stdout.split("resuming from the backup at step ")[1].split()[0])
    assert 8 <= step < 18
    assert "finished at step 18" in resumed.stdout
    assert not backups.exists()  # a finished run leaves nothing to resume
    for kept in ("final.weights.h5", "best.weights.h5"):
        expected, got = weights(tmp_path / "whole" / kept), weights(tmp_path / "killed" / kept)
        assert expected.keys() == got.keys()
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], atol=1e-6, err_msg=f"{kept}: {name}")  # bit-equal in practice
