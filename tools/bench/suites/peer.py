"""peer: the same tiny CLIP trained by tfmm and by open_clip on the same random batches, in one run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tools.bench.harness import ROOT, step_times

VENV = ROOT / "tools" / ".venv-openclip"
SPEC = ("ViT 64×64 patch 8, width 256, 4 layers, 4 heads; text context 32, vocabulary 2048, width 256, 4 layers, "
        "4 heads; embedding 256; AdamW; random batches")


def add_arguments(parser):
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)


def tiny_clip(width=256, layers=4, vocabulary=2048):
    import keras_hub

    from tfmm.encoders import TransformerTextEncoder, ViTImageEncoder
    from tfmm.models import CLIPBackbone, ContrastiveRetriever

    vit = keras_hub.models.ViTBackbone(image_shape=(64, 64, 3), patch_size=8, num_layers=layers, num_heads=4,
                                       hidden_dim=width, mlp_dim=4 * width)
    text = TransformerTextEncoder(vocabulary, 32, hidden_dim=width, num_layers=layers, num_heads=4, intermediate_dim=4 * width)
    return ContrastiveRetriever(CLIPBackbone(ViTImageEncoder(vit), text, embedding_dim=width))  # no preprocessor: tensors in


def random_batches(batch, vocabulary=2048):
    rng = np.random.default_rng(0)
    data = {"images": rng.random((batch, 64, 64, 3), dtype=np.float32),
            "token_ids": rng.integers(1, vocabulary, (batch, 32)).astype("int32"), "padding_mask": np.ones((batch, 32), "int32")}
    return tf.data.Dataset.from_tensors(data).repeat()


def tfmm_throughput(steps, warmup, batch, smoke):
    from tfmm.train import set_precision

    results = {}
    for name, mixed, jit in [("float32", False, False), ("float32 + XLA", False, True),
                             ("mixed_bfloat16", True, False), ("mixed_bfloat16 + XLA", True, True)]:
        if smoke and jit:
            continue
        keras.backend.clear_session()
        set_precision(mixed)
        try:
            model = tiny_clip(64, 1, 256) if smoke else tiny_clip()
            model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.05), jit_compile=jit)
            results[f"tfmm {name}"] = batch / float(np.median(step_times(model, random_batches(batch, 256 if smoke else 2048),
                                                                        steps, warmup)))
        finally:
            set_precision(False)
    return results


def open_clip_throughput(steps, warmup, batch):
    """Runs the worker in its own virtual environment (torch + open_clip are never tfmm dependencies);
    None with the reason when that environment is missing."""
    python = VENV / "bin" / "python"
    if not python.exists():
        return None, (f"{VENV} is missing: create it with `python -m venv {VENV.relative_to(ROOT)} && "
                      f"{VENV.relative_to(ROOT)}/bin/pip install torch==2.14.1 torchvision==0.29.1 open_clip_torch`")
    out = subprocess.run([str(python), str(Path(__file__).parents[1] / "openclip_worker.py"), str(steps), str(warmup),
                          str(batch), str(os.cpu_count())], check=True, capture_output=True, text=True).stdout
    times = json.loads(out.strip().splitlines()[-1])
    return {f"open_clip {mode}": batch / float(np.median(t)) for mode, t in times.items()}, None


def run(args, report):
    steps, warmup, batch = (2, 1, 8) if args.smoke else (args.steps, args.warmup, args.batch)
    ours = tfmm_throughput(steps, warmup, batch, args.smoke)
    theirs, missing = (None, "smoke mode: the tfmm side only") if args.smoke else open_clip_throughput(steps, warmup, batch)
    rows = [[name, round(value, 1)] for name, value in {**ours, **(theirs or {})}.items()]
    note = f"{SPEC}; batch {batch}; median over {steps} steps after {warmup} warm-up steps."
    if theirs:
        ratio = max(ours.values()) / max(theirs.values())
        note += f" Best tfmm / best open_clip: **{ratio:.2f}×** (target ≥ 1.2×)."
        report.record(tfmm_over_open_clip=ratio)
    else:
        print(f"open_clip not run: {missing}", file=sys.stderr)
        note += f" open_clip not run: {missing}."
    report.table("Tiny CLIP training throughput, tfmm vs open_clip (same run, same batches)", ["framework and precision",
                                                                                               "images/s"], rows, note)
