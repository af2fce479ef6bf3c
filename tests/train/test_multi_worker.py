"""Two workers on this machine through `python -m tfmm.launch`: one cluster, one model, only the chief writes."""

import subprocess
import sys


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
