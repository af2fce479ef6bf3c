"""vqa: the default config on the official easy-VQA split over several seeds, fresh easy-VQA-style data,
input layouts (one image encoding per image vs per question), video clips, and every fusion on one budget
with its TFLite int8 accuracy."""

import statistics
import time

import keras

from tfmm.apps.vqa import VQA
from tfmm.data import DataChecks, easy_vqa
from tfmm.data.images import decode_and_resize
from tfmm.data.question_groups import directory_groups, groups_dataset
from tfmm.evaluation import evaluate_vqa
from tfmm.export.tflite import interpreter
from tfmm.layers import FUSIONS
from tfmm.layers.fusion import BASELINES
from tfmm.train import make_optimizer
from tfmm.train.xla_fusion import fusion_enabled
from tools.bench.harness import app_config, scratch, step_times, timed


def add_arguments(parser):
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the default-config runs")
    parser.add_argument("--fusions", nargs="+", default=[n for n in FUSIONS.names() if n not in BASELINES])
    parser.add_argument("--fusion-epochs", type=int, default=20)
    parser.add_argument("--clip-epochs", type=int, default=12)
    parser.add_argument("--tflite-questions", type=int, default=2000, help="test questions run through TFLite int8")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of the layout comparison")
    parser.add_argument("--warmup", type=int, default=5)


def fresh_groups(folder, size, max_questions, count):
    """Freshly generated easy-VQA-style images with their questions (data no model trained on)."""
    import tensorflow as tf

    groups, _ = directory_groups(easy_vqa.generate(folder, count, seed=2026), DataChecks().images)
    return groups_dataset(groups, max_questions, lambda path: decode_and_resize(tf.io.read_file(path), size))


def tflite_accuracy(path, task, groups, limit):
    """Accuracy and median latency of a `.tflite` answerer, one question at a time (host-side tokens)."""
    runner = interpreter(path).get_signature_runner("serving_default")
    correct = total = 0
    times = []
    for group in groups.as_numpy_iterator():
        image = task.preprocessor.convert_images(group["image"][None]).numpy()
        tokens = task.preprocessor.tokenize_numpy([q.decode() for q in group["questions"]])
        for index, answer in enumerate(group["answers"]):
            started = time.perf_counter()
            out = runner(images=image, token_ids=tokens["token_ids"][index][None, None],
                         padding_mask=tokens["padding_mask"][index][None, None])
            times.append(time.perf_counter() - started)
            correct += task.answer_vocabulary[int(out["probabilities"].argmax())] == answer.decode()
            total += 1
        if total >= limit:
            break
    return correct / total, statistics.median(times) * 1000


def layouts(base, steps, warmup, smoke=False):
    """Grouped questions (each image encoded once for its questions) vs one (image, question) pair per example,
    at about the same number of questions per step."""
    rows = []
    variants = (("grouped", []), ("pairs", ["data.group_questions=false", f"data.batch_size={8 * base[0].data.batch_size}"]))
    for name, overrides in variants[1:] if smoke else variants:
        config, runner = app_config(VQA(), base[1] + overrides)
        app = runner.app
        examples = app.load_split(config, "train", DataChecks())
        preprocessor = app.build_preprocessor(config, examples)
        dataset = app.pipeline(config, examples, training=True, repeat=True)
        per_step = statistics.mean(float(w.numpy().sum()) for _, _, w in dataset.take(warmup + steps))
        keras.backend.clear_session()
        task = app.build_task(config, preprocessor)
        task.compile(optimizer=make_optimizer(config.train, 1000))
        step = statistics.median(step_times(task, dataset, steps, warmup, fusion_enabled(config.train.xla_fusion)))
        images = config.data.batch_size
        rows.append([name, config.data.batch_size, round(per_step), images, round(step * 1000), round(per_step / step),
                     round(images / per_step, 2)])
    return rows


def run(args, report):
    smoke = args.smoke
    with scratch() as folder:
        base = []
        if smoke:
            easy_vqa.generate(folder / "data" / "train", 40, seed=1)
            easy_vqa.generate(folder / "data" / "test", 10, seed=2)
            base = [f'data.source="{folder / "data"}"', "data.image_size=32", "data.batch_size=8", "train.epochs=1",
                    "model.image_encoder.size=tiny", "export.representative_examples=8"]
        config, runner = app_config(VQA(), base, folder)
        steps, warmup = (2, 1) if smoke else (args.steps, args.warmup)
        report.table("Input layout: one image encoding per image vs per question (default model)",
                     ["layout", "batch", "questions/step", "images encoded/step", "median step (ms)", "questions/s",
                      "image encodings per question"], layouts((config, base), steps, warmup, smoke))

        fresh = fresh_groups(folder / "fresh", config.data.image_size, config.data.max_questions_per_image,
                             20 if smoke else 1000)
        rows, accuracies = [], []
        for seed in ([0] if smoke else args.seeds):
            config, runner = app_config(VQA(), base + [f"train.seed={seed}"], folder)
            keras.backend.clear_session()
            task, seconds = timed(lambda: runner.train(config))
            test = runner.app.evaluate(task, config, "test")
            fresh_accuracy = evaluate_vqa(task, fresh, config.data.max_questions_per_image)["accuracy"]
            accuracies.append(test["accuracy"])
            rows.append([seed, round(seconds / 60, 1), test["accuracy"], test["errors"], test.get("accuracy_colour"),
                         test.get("accuracy_shape"), test.get("accuracy_yes_no"), fresh_accuracy, test["top_confusions"]])
        report.table("Default config on the official easy-VQA split", ["seed", "train (min)", "test accuracy", "errors",
                     "colour", "shape", "yes/no", "fresh data accuracy", "top confusions"], rows,
                     note=("Trained on the official train split (10% of its images held out for validation), evaluated on "
                           "every official test question and on 1,000 freshly generated easy-VQA-style images. "
                           "Target: ≥ 0.995 on the test split, every seed."))
        report.record(min_test_accuracy=min(accuracies))

        clip_overrides = ["data.source=clips", f"train.epochs={1 if smoke else args.clip_epochs}"] + (
            ["data.clips_size=tiny", "data.frames=3", "data.image_size=32", "data.batch_size=8",
             "model.image_encoder.size=tiny"] if smoke else [])
        config, runner = app_config(VQA(), clip_overrides, folder)
        keras.backend.clear_session()
        task, seconds = timed(lambda: runner.train(config))
        test = runner.app.evaluate(task, config, "test")
        kinds = [k for k in ("colour", "shape", "direction", "yes_no") if f"accuracy_{k}" in test]
        report.table(f"Video QA on the built-in clips ({config.data.frames} frames, {config.train.epochs} epochs, default "
                     "model + question-conditioned frame attention)", ["train (s)", "test accuracy", *kinds, "top confusions"],
                     [[round(seconds), test["accuracy"], *[test[f"accuracy_{k}"] for k in kinds], test["top_confusions"]]])

        rows = []
        for fusion in (["concat"] if smoke else args.fusions):
            config, runner = app_config(VQA(), base + [f"model.fusion={fusion}",
                                                       f"train.epochs={1 if smoke else args.fusion_epochs}"], folder)
            keras.backend.clear_session()
            task, seconds = timed(lambda: runner.train(config))
            test = runner.app.evaluate(task, config, "test")
            version = runner.export(task, config)
            int8, latency = tflite_accuracy(version / "tflite" / "answerer_int8.tflite", task,
                                            runner.app.load_split(config, "test", DataChecks()),
                                            16 if smoke else args.tflite_questions)
            rows.append([fusion, test["accuracy"], test.get("accuracy_colour"), test.get("accuracy_shape"),
                         test.get("accuracy_yes_no"), f"{task.count_params():,}", round(seconds), int8, round(latency, 2)])
        report.table(f"Fusion strategies on one budget ({config.train.epochs} epochs, default encoders, easy-VQA)",
                     ["fusion", "test accuracy", "colour", "shape", "yes/no", "parameters", "train (s)",
                      "TFLite int8 accuracy", "TFLite int8 ms"], rows,
                     note=f"TFLite int8: the exported `answerer_int8.tflite` in LiteRT, one question at a time, on the first "
                          f"{16 if smoke else args.tflite_questions} test questions.")
