"""Two workers on this machine through `python -m tfmm.launch`: one cluster, one model, only the chief writes."""

import subprocess
import sys

import numpy as np


def test_two_worker_training_run(tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "tfmm.launch", "--workers", "2", "--start-timeout", "240", "--",
               sys.executable, "-m", "tfmm.apps.retrieval", "train", "--run-dir", str(run_dir),
               "--set", f"data.data_dir={tiny_config.data.data_dir}", "--set", "data.shapes_config=tiny",
               "--set", "data.image_size=32", "--set", "data.batch_size=16", "--set", "model.image_encoder_size=tiny",
               "--set", "model.text_encoder_size=tiny", "--set", "model.embedding_dim=16", "--set", "train.epochs=2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for worker in (0, 1):
        # 96 training examples, 48 per worker, global batch 16 = 8 per worker: 6 steps an epoch.
        assert any(l.startswith(f"[worker {worker}] training retrieval") and "2 replica(s), 6 steps × 2 epochs" in l for l in lines)
        assert f"[worker {worker}] finished at step 12" in lines
    losses = {w: [l.split("loss: ")[1] for l in lines if l.startswith(f"[worker {w}]") and "val_loss" in l] for w in (0, 1)}
    assert losses[0] == losses[1] and len(losses[0]) == 2  # one model: the same (cross-worker) loss on both
    assert any(l.startswith("[worker 0]   text_to_image_recall@1") for l in lines)  # only the chief evaluates
    assert not any(l.startswith("[worker 1]   text_to_image_recall@1") for l in lines)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["config.toml", "vocabulary.txt", "model.keras", "final.weights.h5", "history.csv", "logs", "loss.png"])


def _launch_command(tiny_config, run_dir, epochs=3):
    return [sys.executable, "-m", "tfmm.launch", "--workers", "2", "--start-timeout", "240", "--",
            sys.executable, "-m", "tfmm.apps.retrieval", "train", "--run-dir", str(run_dir),
            "--set", f"data.data_dir={tiny_config.data.data_dir}", "--set", "data.shapes_config=tiny",
            "--set", "data.image_size=32", "--set", "data.batch_size=16", "--set", "model.image_encoder_size=tiny",
            "--set", "model.text_encoder_size=tiny", "--set", "model.embedding_dim=16", "--set", f"train.epochs={epochs}",
            "--set", "train.backup_every_steps=2", "--set", "train.deterministic=true", "--set", "export.tflite=false"]


def test_killing_a_worker_fails_the_launch_and_a_relaunch_resumes_in_step(tiny_config, tmp_path):
    import time

    import psutil

    from tests.train.test_resume import weights

    whole = subprocess.run(_launch_command(tiny_config, tmp_path / "whole"), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]

    run_dir = tmp_path / "killed"
    launcher = subprocess.Popen(_launch_command(tiny_config, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, cwd=tmp_path)
    backups = [run_dir / "backup" / "chief", run_dir / "backup" / "worker-1"]
    deadline = time.time() + 300
    while time.time() < deadline and not all((b / "ckpt-8.index").exists() for b in backups):
        time.sleep(0.05)
    workers = [p for p in psutil.Process(launcher.pid).children() if "tfmm.apps.retrieval" in " ".join(p.cmdline())]
    worker_1 = next(p for p in workers if '"index": 1' in p.environ().get("TF_CONFIG", ""))
    worker_1.kill()  # SIGKILL, mid-epoch 2 (steps 7-12)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode != 0 and "worker 1 failed" in stderr
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]  # nothing left running

    resumed = subprocess.run(_launch_command(tiny_config, run_dir), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    steps = {int(l.split("resuming from the backup at step ")[1].split()[0]) for l in resumed.stdout.splitlines() if "resuming from" in l}
    assert len(steps) == 1 and 8 <= steps.pop() < 18  # both workers resumed from the same step
    assert "[worker 0] finished at step 18" in resumed.stdout and "[worker 1] finished at step 18" in resumed.stdout
    # Two uninterrupted 2-worker runs already differ by up to 0.044 in a weight (measured: collective training on
    # CPU is not bit-deterministic here), so this only checks the resumed run stays within that spread. The exact
    # check of resuming (bit-equal weights) is the single-process test in test_resume.py.
    expected, got = weights(tmp_path / "whole" / "final.weights.h5"), weights(run_dir / "final.weights.h5")
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=0.1, err_msg=name)
