"""segment: FiLM U-Net vs Transformer–U-Net (cross-attention to the words) on the default config — mIoU on the
built-in test split, the held-out colour–shape combinations, the held-out phrasings and fresh easy-VQA-style images,
no-target accuracy, parameters, training time and milliseconds per image (Keras, SavedModel, TFLite int8)."""

import argparse

import keras
import numpy as np
import tensorflow as tf

from tfmm.apps.segment import Segment
from tfmm.data import DataChecks, easy_vqa
from tools.bench.harness import SMOKE_SHAPES, app_config, median_ms, scratch, tflite_latency_ms, timed

HEADER = ["model", "test mIoU", "held-out mIoU", "phrasing mIoU", "no-target accuracy", "easy-VQA-style mIoU",
          "parameters", "train shapes (s)", "train easy-VQA (s)", "Keras ms/image (b1)", "Keras ms/image (b64)",
          "SavedModel ms/image (b1)", "TFLite int8 ms/image (b1)"]


def add_arguments(parser):
    parser.add_argument("--variants", nargs="+", default=["film", "cross_attention"])
    parser.add_argument("--easy-vqa-epochs", type=int, default=0,
                        help="epochs of the easy-VQA model (0: the default config's)")
    parser.add_argument("--fresh-images", type=int, default=300, help="fresh easy-VQA-style images scored")


def _latencies(task, runner, config, examples):
    images = np.stack([e["image"] for e in examples])
    texts = [e["text"].decode() for e in examples]
    keras_b1 = median_ms(lambda: task.segment(images[:1], texts[:1]), repeats=20)
    keras_b64 = median_ms(lambda: task.segment(images, texts), repeats=5) / len(texts)
    version = runner.export(task, config)
    served = tf.saved_model.load(str(version)).signatures["segment"]
    png = tf.constant([tf.io.encode_png(images[0]).numpy()])
    saved_b1 = median_ms(lambda: served(image_bytes=png, text=tf.constant(texts[:1])), repeats=20)
    tokens = task.preprocessor.tokenize_numpy(texts[:1])
    inputs = {"images": task.preprocessor.convert_images(images[:1]).numpy(), **tokens}
    int8 = version / "tflite" / "segmenter_int8.tflite"
    tflite_b1 = tflite_latency_ms(int8, inputs) if int8.is_file() else "—"
    return keras_b1, keras_b64, saved_b1, tflite_b1


def _label(model, data):
    """The row's name: the conditioning and what the default config adds to it."""
    extras = [f"words at {model.attention_levels()} of {len(model.filters)} levels"]
    if model.coarse_logits:
        extras.append("coarse logits")
    if model.bottleneck_layers:
        extras.append(f"{model.bottleneck_layers} bottleneck Transformer block(s)")
    weights = model.class_map_weights(data)
    extras += [f"{name} target" for name, weight in weights.items() if weight]
    if model.uses_attribute_maps(data):
        extras.append("attribute maps" + (" + matched words" if model.uses_attribute_fit(data) else ""))
    return f"{model.conditioning} ({', '.join(extras)})"


def variant_row(conditioning, args, folder, fresh):
    app = Segment()
    base = (SMOKE_SHAPES + ["data.image_size=32", "model.filters=[8, 16]", "model.text_encoder.size=tiny",
                            "export.representative_examples=8"]) if args.smoke else []
    config, runner = app_config(app, base + [f"model.conditioning={conditioning}"], folder)
    keras.backend.clear_session()
    print(f"segment: {conditioning} on shapes")
    task, shapes_seconds = timed(lambda: runner.train(config))
    scores = {split: app.evaluate(task, config, split) for split in ("test", "heldout", "phrasing")}
    examples = list(app.load_split(config, "test", DataChecks()).take(64).as_numpy_iterator())
    latencies = _latencies(task, runner, config, examples)

    easy_overrides = ["data.source=easy_vqa"] + (["train.steps_per_epoch=2"] if args.smoke else [])
    if args.easy_vqa_epochs:
        easy_overrides.append(f"train.epochs={args.easy_vqa_epochs}")
    easy_config, easy_runner = app_config(app, base + [f"model.conditioning={conditioning}"] + easy_overrides, folder)
    keras.backend.clear_session()
    print(f"segment: {conditioning} on easy-VQA")
    easy_task, easy_seconds = timed(lambda: easy_runner.train(easy_config))
    easy = app.evaluate(easy_task, easy_config, None, argparse.Namespace(data=str(fresh)))
    row = [_label(config.model, config.data), scores["test"]["miou"], scores["heldout"]["miou"], scores["phrasing"]["miou"],
           scores["test"]["no_target_accuracy"], easy["miou"], f"{task.count_params():,}", round(shapes_seconds),
           round(easy_seconds), *(round(v, 2) if isinstance(v, float) else v for v in latencies)]
    return row, scores, easy, conditioning


def run(args, report):
    with scratch() as folder:
        fresh = easy_vqa.generate(folder / "fresh_easy_vqa", 16 if args.smoke else args.fresh_images, seed=2026)
        results = [variant_row(v, args, folder, fresh) for v in (args.variants[:1] if args.smoke else args.variants)]
    report.table("Referring segmentation: FiLM U-Net vs Transformer–U-Net (default config each; easy-VQA-style: a "
                 "model of the same config trained on the official easy-VQA images, scored on fresh generated ones)",
                 HEADER, [row for row, *_ in results],
                 note="mIoU over expressions with a target; no-target accuracy: the share of expressions naming nothing "
                      "whose predicted mask is empty (test split). Targets: test ≥ 0.90, held-out ≥ 0.80, no-target ≥ 0.95, "
                      "easy-VQA-style ≥ 0.85, in ≤ 20 minutes of training.")
    kinds = sorted({k for _, scores, *_ in results for k in scores["test"]["kinds"]})
    report.table("Test mIoU (no-target accuracy for no_target) per expression kind", ["model", *kinds],
                 [[row[0], *(scores["test"]["kinds"][k]["no_target_accuracy" if k == "no_target" else "miou"]
                             if k in scores["test"]["kinds"] else "—" for k in kinds)] for row, scores, *_ in results])
    for _, scores, easy, name in results:
        report.record(**{f"{name}_test_miou": scores["test"]["miou"], f"{name}_heldout_miou": scores["heldout"]["miou"],
                         f"{name}_no_target_accuracy": scores["test"]["no_target_accuracy"],
                         f"{name}_easy_vqa_miou": easy["miou"]})
