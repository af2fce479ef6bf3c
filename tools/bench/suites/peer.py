"""peer: the same tiny CLIP trained and run by tfmm and by open_clip in one run (same random batches), each
training step's matmul FLOP/s as a share of this machine's matmul ceiling, and the loss curve of the
retrieval app on shapes in each precision mode against float32."""

import csv
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfmm.train import set_precision
from tfmm.train.precision import native_bfloat16
from tools.bench.ceiling import ceiling, forward_flops, matmul_gflops
from tools.bench.harness import ROOT, SMOKE_SHAPES, app_config, median_ms, scratch, step_times, timed

VENV = ROOT / "tools" / ".venv-openclip"
SPEC = ("ViT 64×64 patch 8, width 256, 4 layers, 4 heads; text context 32, vocabulary 2048, width 256, 4 layers, "
        "4 heads; embedding 256; AdamW; random batches")
# name → (mixed bfloat16, XLA fusion of element-wise ops, whole-step XLA, bfloat16 matmuls in a float32 model)
MODES = {"float32": (False, False, False, False), "float32 + XLA fusion": (False, True, False, False),
         "float32 + XLA whole step": (False, False, True, False), "mixed_bfloat16": (True, False, False, False),
         "mixed_bfloat16 + XLA fusion": (True, True, False, False),
         "mixed_bfloat16 + XLA whole step": (True, False, True, False),
         "bfloat16 matmuls": (False, False, False, True), "bfloat16 matmuls + XLA fusion": (False, True, False, True)}
CURVE_MODES = ("float32", "float32 + XLA fusion", "mixed_bfloat16 + XLA fusion", "bfloat16 matmuls + XLA fusion")


def add_arguments(parser):
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="training rounds that alternate the two frameworks")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated tfmm training modes to time (default: all; a slow machine can time fewer)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20, help="timed inference calls per row")
    parser.add_argument("--curve-epochs", type=int, default=4, help="epochs of the retrieval app per loss curve")


def tiny_clip(width=256, layers=4, vocabulary=2048):
    from tfmm.encoders import TransformerTextEncoder, ViTImageEncoder
    from tfmm.models import CLIPBackbone, ContrastiveRetriever

    vit = ViTImageEncoder(64, patch_size=8, hidden_dim=width, num_layers=layers, num_heads=4, mlp_dim=4 * width)
    text = TransformerTextEncoder(vocabulary, 32, hidden_dim=width, num_layers=layers, num_heads=4, intermediate_dim=4 * width)
    return ContrastiveRetriever(CLIPBackbone(vit, text, embedding_dim=width))  # no preprocessor: tensors in


def random_inputs(batch, vocabulary=2048):
    rng = np.random.default_rng(0)
    return {"images": rng.random((batch, 64, 64, 3), dtype=np.float32),
            "token_ids": rng.integers(1, vocabulary, (batch, 32)).astype("int32"), "padding_mask": np.ones((batch, 32), "int32")}


@contextmanager
def precision_mode(mixed):
    """Build and train inside: the global dtype policy, restored afterwards."""
    keras.backend.clear_session()
    set_precision(mixed)
    try:
        yield
    finally:
        set_precision(False)


def tfmm_training(modes, steps, warmup, batch, smoke):
    """{"tfmm MODE": step seconds}, each mode in a fresh process (as open_clip's side runs): in one process the
    later modes ran up to 25 % slower than the same mode alone."""
    results = {}
    for name in modes:
        if smoke and MODES[name][2]:
            continue
        out = subprocess.run([sys.executable, "-m", "tools.bench.suites.peer", name, str(steps), str(warmup), str(batch),
                              str(int(smoke))], check=True, capture_output=True, text=True, cwd=ROOT).stdout
        results[f"tfmm {name}"] = json.loads(out.strip().splitlines()[-1])
    return results


def training_in_rounds(modes, steps, warmup, batch, rounds, smoke, bfloat16):
    """{"tfmm MODE" | "open_clip MODE": step seconds pooled over `rounds` rounds}. Each round runs every tfmm mode
    and open_clip once, a share of the steps each, so both frameworks sample the same stretches of time: this
    machine's speed drifts by up to 40 % within an hour, which one pass per side turned into its ratio."""
    per_round = -(-steps // rounds)
    pooled = {}
    for _ in range(rounds):
        theirs, _ = ((None, None) if smoke else open_clip_worker(per_round, warmup, batch, 1, bfloat16, "train"))
        for name, times in (tfmm_training(modes, per_round, warmup, batch, smoke)
                            | {f"open_clip {m}": t for m, t in (theirs or {}).get("train", {}).items()}).items():
            pooled.setdefault(name, []).extend(times)
    return pooled


def mode_step_seconds(name, steps, warmup, batch, smoke):
    """One training mode's step seconds, in this process."""
    from tfmm.train.matmul_precision import bfloat16_matmuls

    mixed, fusion, whole_step, matmuls = MODES[name]
    with precision_mode(mixed), bfloat16_matmuls(matmuls):
        model = tiny_clip(64, 1, 256) if smoke else tiny_clip()
        model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.05), jit_compile=whole_step)
        data = tf.data.Dataset.from_tensors(random_inputs(batch, 256 if smoke else 2048)).repeat()
        return [float(t) for t in step_times(model, data, steps, warmup, fusion)]


def tfmm_inference(batches, repeats, smoke, folder, bfloat16):
    """{(runtime, batch): (image embeddings/s, text embeddings/s)} for Keras (float32 and mixed bfloat16),
    the SavedModel and the TFLite towers (one call per example, as the exported files are used)."""
    from tfmm.export.tflite import TFLiteRunner, convert_saved_model, function_saved_model

    results = {}
    for mixed in (False, True)[:2 if bfloat16 else 1]:
        with precision_mode(mixed):
            model = tiny_clip(64, 1, 256) if smoke else tiny_clip()
            towers = {"image": model.backbone.image_embedder(), "text": model.backbone.text_embedder()}
            for batch in batches:
                inputs = random_inputs(batch, 256 if smoke else 2048)
                feeds = {"image": inputs["images"], "text": {k: inputs[k] for k in ("token_ids", "padding_mask")}}
                rates = []
                for side, tower in towers.items():
                    call = tf.function(lambda x, tower=tower: tower(x, training=False))
                    rates.append(batch / median_ms(lambda: call(feeds[side])["embedding"].numpy(), repeats) * 1000)
                results[("tfmm Keras " + ("mixed_bfloat16" if mixed else "float32"), batch)] = tuple(rates)
            if mixed:
                continue
            specs = {"image": [tf.TensorSpec([None, 64, 64, 3], tf.float32, name="images")],
                     "text": [tf.TensorSpec([None, 32], tf.int32, name="token_ids"),
                              tf.TensorSpec([None, 32], tf.int32, name="padding_mask")]}
            one = {side: [tf.TensorSpec([1, *s.shape[1:]], s.dtype, name=s.name) for s in spec] for side, spec in specs.items()}
            serve = {"image": lambda images: towers["image"](images, training=False),
                     "text": lambda token_ids, padding_mask: towers["text"](
                         {"token_ids": token_ids, "padding_mask": padding_mask}, training=False)}
            runners = {}
            for side, tower in towers.items():
                for name, batch_specs in (("SavedModel", specs[side]), ("TFLite", one[side])):
                    path = folder / f"{side}_{name}"
                    function_saved_model(tower, serve[side], batch_specs, path)
                    if name == "SavedModel":
                        runners[("tfmm SavedModel float32", side)] = tf.saved_model.load(str(path)).signatures["serving_default"]
                for quantization in ("float32", "dynamic_int8", "int8"):
                    sample = random_inputs(8, 256 if smoke else 2048)
                    calibration = [{"images": sample["images"][i:i + 1]} if side == "image" else
                                   {k: sample[k][i:i + 1] for k in ("token_ids", "padding_mask")} for i in range(8)]
                    tflite = convert_saved_model(folder / f"{side}_TFLite", quantization,
                                                 (lambda c=calibration: iter(c)) if quantization == "int8" else None)
                    runners[(f"tfmm TFLite {quantization}", side)] = TFLiteRunner(tflite)
            for runtime in sorted({r for r, _ in runners}):
                for batch in batches:
                    inputs = random_inputs(batch, 256 if smoke else 2048)
                    feeds = {"image": {"images": inputs["images"]},
                             "text": {k: inputs[k] for k in ("token_ids", "padding_mask")}}
                    results[(runtime, batch)] = tuple(batch / median_ms(lambda s=side: runners[(runtime, s)](**feeds[s]),
                                                                        repeats if batch == 1 else max(3, repeats // 4))
                                                      * 1000 for side in ("image", "text"))
    return results


def open_clip_worker(steps, warmup, batch, repeats, bfloat16, parts):
    """Runs the worker in its own virtual environment (torch + open_clip are never tfmm dependencies):
    (its JSON, None), or (None, the reason) when that environment is missing."""
    python = VENV / "bin" / "python"
    if not python.exists():
        return None, (f"{VENV} is missing: create it with `python -m venv {VENV.relative_to(ROOT)} && "
                      f"{VENV.relative_to(ROOT)}/bin/pip install torch==2.14.1 torchvision==0.29.1 open_clip_torch`")
    out = subprocess.run([str(python), str(Path(__file__).parents[1] / "openclip_worker.py"), str(steps), str(warmup),
                          str(batch), str(os.cpu_count()), str(repeats), "float32,bfloat16" if bfloat16 else "float32",
                          parts], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]), None


def loss_curves(modes, epochs, smoke, folder):
    """{mode: per-epoch training losses, and the seconds it took} of the retrieval app's default config on shapes."""
    from tfmm.apps.retrieval import Retrieval

    curves = {}
    for name in modes:
        mixed, fusion, _, matmuls = MODES[name]
        overrides = (SMOKE_SHAPES + ["model.image_encoder.size=tiny"] if smoke else [f"train.epochs={epochs}"])
        overrides += [f"train.mixed_precision={str(mixed).lower()}", f'train.xla_fusion="{"on" if fusion else "off"}"',
                      f'train.matmul_precision="{"bfloat16" if matmuls else "float32"}"']
        config, runner = app_config(Retrieval(), overrides, folder / name.replace(" ", "_"))
        run = folder / name.replace(" ", "_") / "run"
        _, seconds = timed(lambda: runner.train(config, run))
        with open(run / "history.csv", newline="") as f:
            curves[name] = ([float(row["loss"]) for row in csv.DictReader(f)], seconds)
    return curves


def run(args, report):
    smoke = args.smoke
    steps, warmup, batch, repeats = (2, 1, 8, 2) if smoke else (args.steps, args.warmup, args.batch, args.repeats)
    # Without AMX or AVX-512 BF16 both frameworks emulate bfloat16 (many times slower than float32): left out.
    bfloat16 = native_bfloat16()
    emulated = "" if bfloat16 else " bfloat16 is left out: this CPU has no bfloat16 instructions (AMX or AVX-512 BF16)."
    unknown = sorted(set(args.modes.split(",")) - set(MODES))
    if unknown:
        raise SystemExit(f"peer: unknown --modes {', '.join(unknown)}; choose from: {', '.join(MODES)}")
    modes = [name for name in args.modes.split(",") if bfloat16 or "bfloat16" not in name]
    rates = matmul_gflops(((256, 256, 256),), 0.1, bfloat16) if smoke else matmul_gflops(bfloat16=bfloat16)
    theirs, missing = ((None, "smoke mode: the tfmm side only") if smoke else
                       open_clip_worker(steps, warmup, batch, repeats, bfloat16, "infer,matmul"))
    if theirs:
        rates.update(theirs["matmul"])
    else:
        print(f"open_clip not run: {missing}", file=sys.stderr)
    report.table("Matmul ceiling of this machine (best of ≥ 1 s of calls)", ["library, precision, m×k×n", "GFLOP/s"],
                 [[name, round(value)] for name, value in rates.items()],
                 "The ceiling of a precision is the best rate any library reached in it." + emulated)

    model = tiny_clip(64, 1, 256) if smoke else tiny_clip()
    specs = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in random_inputs(batch, 256 if smoke else 2048).items()}
    step_flops = 3 * forward_flops(lambda x: model.backbone(x, training=False), specs)
    rounds = 1 if smoke else args.rounds
    seconds = {name: float(np.median(times)) for name, times in
               training_in_rounds(modes, steps, warmup, batch, rounds, smoke, bfloat16).items()}
    rows = []
    for name, value in seconds.items():
        precision = "bfloat16" if "bfloat16" in name else "float32"
        achieved = step_flops / value / 1e9
        rows.append([name, round(batch / value, 1), round(value * 1000), round(achieved), f"{achieved / ceiling(rates, precision):.0%}"])
    note = (f"{SPEC}; batch {batch}; median over {rounds * -(-steps // rounds)} steps: {rounds} rounds, each running every "
            f"row in its own process for {-(-steps // rounds)} steps after {warmup} warm-up steps. A step is "
            f"{step_flops / 1e9:.0f} GFLOP of matmuls (3× the forward pass counted from its graph).{emulated}")
    best = {side: max(batch / v for k, v in seconds.items() if k.startswith(side)) for side in ("tfmm", "open_clip") if
            any(k.startswith(side) for k in seconds)}
    if "open_clip" in best:
        ratio = best["tfmm"] / best["open_clip"]
        note += f" Best tfmm / best open_clip: **{ratio:.2f}×** (target ≥ 1.2×)."
        report.record(tfmm_over_open_clip=ratio)
    report.table("Tiny CLIP training, tfmm vs open_clip (same run, same batches)",
                 ["framework and precision", "images/s", "ms/step", "matmul GFLOP/s", "share of the ceiling"], rows, note)

    with scratch() as folder:
        batches = (1, 8) if smoke else (1, 64)
        inference = tfmm_inference(batches, repeats, smoke, folder, bfloat16)
        if theirs:
            for mode, sides in theirs["infer"].items():
                precision, _, size = mode.partition(" batch ")
                inference[(f"open_clip eval {precision}", int(size))] = tuple(int(size) / float(np.median(sides[s]))
                                                                             for s in ("image", "text"))
        report.table("Tiny CLIP inference: embeddings per second", ["runtime", "batch", "image embeddings/s", "text embeddings/s"],
                     [[runtime, size, round(image, 1), round(text, 1)] for (runtime, size), (image, text) in inference.items()],
                     f"Median of {repeats} calls (a quarter of that for batch 64 on TFLite and SavedModel). TFLite runs "
                     "its batch-1 file once per example, as the exported towers are used; int8 is calibrated on 8 random inputs.")

        curves = loss_curves([name for name in CURVE_MODES if name in modes or name == "float32"], args.curve_epochs, smoke, folder)
        reference = np.array(curves["float32"][0])
        rows = []
        for name, (losses, seconds) in curves.items():
            gap = float(np.max(np.abs(np.array(losses) - reference) / reference))
            rows.append([name, *(round(v, 4) for v in losses), f"{gap:.2%}", round(seconds)])
            report.record(**{f"loss_gap_{name.replace(' + ', '_').replace(' ', '_')}": gap})
        report.table("Retrieval app on shapes (default config): training loss per epoch against float32",
                     ["mode", *(f"epoch {i + 1}" for i in range(len(reference))), "largest gap to float32", "seconds"], rows,
                     "Target: every mode within 2 % of float32 at every epoch. Seconds include building the data and the model."
                     + emulated)


if __name__ == "__main__":  # one training mode, from tfmm_training: prints its step seconds
    import tfmm  # noqa: F401  (TensorFlow without its start-up lines)

    print(json.dumps(mode_step_seconds(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                       bool(int(sys.argv[5])))))
