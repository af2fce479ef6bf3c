"""fusion: each app's default training step with train.xla_fusion off and on, on this machine (the evidence
behind each app's default and behind "auto", which turns it on only for CPUs with AMX)."""

import statistics

import keras

from tfmm.apps.assistant import Alignment, Assistant
from tfmm.apps.caption import Caption
from tfmm.apps.classify import Classify
from tfmm.apps.generate import Generate
from tfmm.apps.generate_stages import VQVAEStage, with_training
from tfmm.apps.retrieval import Retrieval
from tfmm.apps.segment import Segment
from tfmm.apps.vqa import VQA
from tfmm.data import DataChecks
from tfmm.train import make_optimizer
from tfmm.train.precision import cpu_flags
from tools.bench.harness import SMOKE_SHAPES, app_config, scratch, step_times

# (label, the app whose apps/<name>.toml is read, the app that trains, the config section that trains it)
CASES = (("retrieval", Retrieval, Retrieval, "train"), ("vqa", VQA, VQA, "train"),
         ("classify", Classify, Classify, "train"), ("caption", Caption, Caption, "train"),
         ("segment", Segment, Segment, "train"), ("generate VQ-VAE", Generate, VQVAEStage, "vqvae_train"),
         ("assistant alignment", Assistant, Alignment, "align_train"),
         ("assistant instruction tuning", Assistant, Assistant, "train"))


def add_arguments(parser):
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=4)


def median_step_ms(config_app, training_app, section, steps, warmup, overrides, folder, fusion):
    """Median ms per step of the app's default model on its own training pipeline."""
    keras.backend.clear_session()
    config, _ = app_config(config_app(), overrides, folder)
    config = with_training(config, section)
    if config_app is Assistant:  # the assistant's stages share one tokenizer, made before either builds
        assistant = Assistant()
        assistant.preprocessor = assistant.make_preprocessor(config)
        app = Alignment(assistant) if training_app is Alignment else assistant
    else:
        app = training_app()
    examples = app.load_split(config, "train", DataChecks(log=lambda _: None))
    preprocessor = app.build_preprocessor(config, examples)
    task = app.build_task(config, preprocessor)
    task.compile(optimizer=make_optimizer(config.train, 1000))
    data = app.pipeline(config, examples, training=True, repeat=True)
    return statistics.median(step_times(task, data, steps, warmup, fusion)) * 1000, config.train.xla_fusion


def run(args, report):
    smoke = args.smoke
    steps, warmup = (2, 1) if smoke else (args.steps, args.warmup)
    cases = CASES[:1] if smoke else CASES
    overrides = SMOKE_SHAPES + ["model.image_encoder.size=tiny"] if smoke else []
    rows = []
    with scratch() as folder:
        for label, config_app, training_app, section in cases:
            (off, default), (on, _) = (median_step_ms(config_app, training_app, section, steps, warmup, overrides, folder,
                                                      fusion) for fusion in (False, True))
            rows.append([label, default, round(off, 1), round(on, 1), f"{off / on:.2f}×"])
            report.record(**{f"speedup_{label.replace(' ', '_').replace('-', '')}": off / on})
    amx = "has AMX: auto turns the fusion on" if "amx_tile" in cpu_flags() else "has no AMX: auto leaves the fusion off"
    report.table("Each app's default training step, XLA fusion off vs on", ["app (stage)", "default train.xla_fusion",
                 "ms/step off", "ms/step on", "speed-up with fusion"], rows,
                 f"Median over {steps} steps after {warmup} warm-up steps, the app's default config and pipeline. "
                 f"This machine {amx}.")
