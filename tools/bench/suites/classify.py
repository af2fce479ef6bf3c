"""classify: every fusion and the single-modality baselines on `shapes_reports`, multi-task vs single-task,
modality dropout, and transfer from an image encoder the retrieval app pretrained."""

import keras
import numpy as np

from tfmm.apps.classify import Classify
from tfmm.apps.retrieval import Retrieval
from tfmm.evaluation.classification import MISSING
from tfmm.layers import FUSIONS
from tools.bench.harness import SMOKE_SHAPES, app_config, median_ms, scratch, timed

HEADER = ["model", "accuracy (both)", "macro-F1 (both)", "accuracy, text missing", "accuracy, image missing", "parameters",
          "train (s)", "ms/example (batch 64)"]


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=6, help="epochs per row")
    parser.add_argument("--pretrain-epochs", type=int, default=5, help="retrieval epochs for the pretrained encoder")


def row(name, overrides, folder, smoke=False):
    config, runner = app_config(Classify(), overrides, folder)
    keras.backend.clear_session()
    print(f"classify: {name}")
    task, seconds = timed(lambda: runner.train(config))
    scores = {missing: runner.app.evaluate(task, config, "test", missing=missing)["finding"]
              for missing in (MISSING[:1] if smoke else MISSING)}
    scores = {missing: scores.get(missing, scores["none"]) for missing in MISSING}  # smoke: one evaluation stands in
    size = config.data.image_size
    images = np.random.default_rng(0).integers(0, 256, (64, size, size, 3), dtype=np.uint8)
    texts = ["target colour: red. image quality is adequate."] * 64
    ms = median_ms(lambda: task.classify_details(images, texts), repeats=5) / 64
    return [name, scores["none"]["accuracy"], scores["none"]["macro_f1"], scores["text"]["accuracy"],
            scores["image"]["accuracy"], f"{task.count_params():,}", round(seconds), round(ms, 2)]


def run(args, report):
    smoke = args.smoke
    base = SMOKE_SHAPES + ["model.image_encoder.size=tiny"] if smoke else [f"train.epochs={args.epochs}"]
    with scratch() as folder:
        baselines = ["image_only"] if smoke else ["image_only", "text_only"]
        names = baselines + (["concat"] if smoke else [n for n in FUSIONS.names() if n not in ("image_only", "text_only")])
        rows = [row(name.replace("_", " ") if name.endswith("only") else f"fusion {name}", base + [f"model.fusion={name}"], folder, smoke)
                for name in names]
        single = max(r[1] for r in rows[:len(baselines)])
        best = max(r[1] for r in rows[len(baselines):])
        report.table(f"Fusion strategies on `shapes_reports` (main label `finding`, {args.epochs} epochs each, multi-task "
                     "with `shape` and `colour`)", HEADER, rows,
                     note=("\"text missing\" / \"image missing\": the same trained model evaluated with that modality removed "
                           "(empty text / black image). The baselines are the same encoders reading one modality, no fusion. "
                           f"Best fusion {best:.3f} vs best single modality {single:.3f}: "
                           f"**{100 * (best - single):+.1f} points** (target ≥ +10)."))
        report.record(fusion_gain_points=100 * (best - single))

        variants = [("single-task (finding only)", ['data.label_columns=["finding"]']), ("multi-task, static weights", []),
                    ("multi-task, uncertainty weights", ["model.loss_weighting=uncertainty"]),
                    ("multi-task + modality dropout 0.3", ["data.modality_dropout=0.3"])]
        report.table("Multi-task vs single-task, and modality dropout (default fusion)", HEADER,
                     [row(name, base + overrides, folder, smoke) for name, overrides in (variants[:1] if smoke else variants)])

        pretrain, runner = app_config(Retrieval(), (SMOKE_SHAPES + ["model.image_encoder.size=tiny",
                                                                    "model.image_encoder.normalization=batch"])
                                      if smoke else [f"train.epochs={args.pretrain_epochs}",
                                                     "model.image_encoder.normalization=batch"], folder)
        keras.backend.clear_session()
        retriever = runner.train(pretrain)
        preset = folder / "presets" / "image_encoder"
        retriever.backbone.image_encoder.save_to_preset(str(preset))
        variants = [("from scratch", []),
                    ("pretrained image encoder, frozen", [f'model.image_encoder.weights="{preset}"',
                                                          "model.image_encoder.trainable=frozen"]),
                    ("pretrained image encoder, full (lr × 0.1)", [f'model.image_encoder.weights="{preset}"'])]
        report.table(f"Transfer: image encoder pretrained by the retrieval app ({args.pretrain_epochs} epochs on shapes "
                     "captions), frozen vs fine-tuned", HEADER,
                     [row(name, base + overrides, folder, smoke) for name, overrides in (variants[1:2] if smoke else variants)])
