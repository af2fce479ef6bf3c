"""retrieval: the default config trained on shapes (Recall@K, zero-shot), input-pipeline wait, export sizes,
TFLite parity and latency."""

import json

import numpy as np
import tensorflow as tf

from tfmm.apps.retrieval import Retrieval
from tfmm.data import DataChecks
from tfmm.train import make_optimizer
from tfmm.train.xla_fusion import fusion_enabled
from tools.bench.harness import SMOKE_SHAPES, app_config, dir_megabytes, scratch, step_times, tflite_latency_ms, timed


def add_arguments(parser):
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (after --warmup)")
    parser.add_argument("--warmup", type=int, default=5)


def input_wait(config, steps, warmup):
    """Median step time on the real pipeline (raw batches, preprocessed in tf.data) vs on one preprocessed
    batch repeated (nothing to wait for)."""
    app = Retrieval()
    examples = app.load_split(config, "train", DataChecks())
    preprocessor = app.build_preprocessor(config, examples)
    real = app.pipeline(config, examples, training=True, repeat=True)
    preloaded = tf.data.Dataset.from_tensors(preprocessor(next(iter(real)))).repeat()
    task = app.build_task(config, preprocessor)
    task.compile(optimizer=make_optimizer(config.train, 1000))
    fused = fusion_enabled(config.train.xla_fusion)  # as the training session decides
    timings = {"pipeline": float(np.median(step_times(task, real, steps, warmup, fused)))}
    task.preprocessor = None  # the same traced step on an already preprocessed batch
    timings["preloaded"] = float(np.median(step_times(task, preloaded, steps, warmup, fused)))
    return timings


def run(args, report):
    smoke = args.smoke
    steps, warmup = (2, 1) if smoke else (args.steps, args.warmup)
    with scratch() as folder:
        config, runner = app_config(Retrieval(), SMOKE_SHAPES + ["model.image_encoder.size=tiny"] if smoke else [], folder)
        if smoke:
            config.export.tflite_quantization = ["float32"]
        timings = input_wait(config, steps, warmup)
        batch = config.data.batch_size
        report.table("Training throughput and input wait (default config)", ["input", "median step (ms)", "images/s"],
                     [[k, round(v * 1000), round(batch / v)] for k, v in timings.items()],
                     note=f"Share of the step spent waiting on input: {max(0.0, 1 - timings['preloaded'] / timings['pipeline']):.1%}.")

        task, seconds = timed(lambda: runner.train(config))
        test = runner.app.evaluate(task, config, "test")
        zero = runner.app.zero_shot(task, config, "heldout")
        rows = [[k, v] for k, v in test.items() if "recall" in k]
        rows += [[f"zero-shot held-out {k}", v] for k, v in zero.items() if "accuracy" in k]
        rows.append(["training time (s)", round(seconds)])
        report.table(f"Default config trained on shapes (test split: {test['images']} images, {test['captions']} captions)",
                     ["metric", "value"], rows)
        report.record(text_to_image_recall_at_1=test["text_to_image_recall@1"], train_seconds=seconds)

        version = runner.export(task, config)
        parity = json.loads((version / "tflite" / "parity.json").read_text())
        size = config.data.image_size
        image = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
        tokens = task.preprocessor.tokenize_numpy(["a small red circle left of a large blue star"])
        rows = [["SavedModel (version directory, TFLite included)", f"{dir_megabytes(version):.2f} MB", "", ""]]
        for name, info in parity.items():
            inputs = {"images": image} if name.startswith("image") else tokens
            rows.append([name, f"{info['bytes'] / 1e6:.2f} MB", info["min_cosine"],
                         round(tflite_latency_ms(version / "tflite" / name, inputs, runs=20 if smoke else 200), 3)])
        report.table("Export sizes, TFLite parity and latency (batch 1, ai_edge_litert)",
                     ["file", "size", "min cosine vs Keras", "median latency (ms)"], rows)
