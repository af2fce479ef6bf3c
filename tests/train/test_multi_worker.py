"""Two workers on this machine through `python -m tfmm.launch`: one cluster, one model, only the chief writes;
a worker killed mid-epoch fails the launch, and a relaunch resumes both workers from the same step."""

import subprocess
import sys
import time

import psutil


def _launch_command(tiny_config, run_dir, epochs=3):
    return [sys.executable, "-m", "tfmm.launch", "--workers", "2", "--start-timeout", "240", "--",
            sys.executable, "-m", "tfmm.apps.retrieval", "train", "--run-dir", str(run_dir),
            "--set", f"data.data_dir={tiny_config.data.data_dir}", "--set", "data.shapes_config=tiny",
            "--set", "data.image_size=32", "--set", "data.batch_size=16", "--set", "model.image_encoder.size=tiny",
            "--set", "model.text_encoder.size=tiny", "--set", "model.embedding_dim=16", "--set", f"train.epochs={epochs}",
            "--set", "train.backup_every_steps=2", "--set", "train.deterministic=true", "--set", "export.tflite=false"]


def test_two_workers_one_killed_then_relaunched_resume_in_step(tiny_config, tmp_path):
    run_dir = tmp_path / "run"
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
    lines = resumed.stdout.splitlines()
    steps = {int(l.split("resuming from the backup at step ")[1].split()[0]) for l in lines if "resuming from" in l}
    assert len(steps) == 1 and 8 <= steps.pop() < 18  # both workers resumed from the same step
    for worker in (0, 1):
        # 96 training examples, 48 per worker, global batch 16 = 8 per worker: 6 steps an epoch.
        assert any(l.startswith(f"[worker {worker}] training retrieval") and "2 replica(s), 6 steps × 3 epochs" in l
                   for l in lines)
        assert f"[worker {worker}] finished at step 18" in lines
    losses = {w: [l.split("loss: ")[1] for l in lines if l.startswith(f"[worker {w}]") and "val_loss" in l] for w in (0, 1)}
    assert losses[0] == losses[1] and losses[0]  # one model: the same (cross-worker) loss on both
    assert any(l.startswith("[worker 0]   text_to_image_recall@1") for l in lines)  # only the chief evaluates
    assert not any(l.startswith("[worker 1]   text_to_image_recall@1") for l in lines)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(  # only the chief writes, and no backup is left
        ["config.toml", "preset", "best.weights.h5", "final.weights.h5", "history.csv", "logs", "loss.png"])
