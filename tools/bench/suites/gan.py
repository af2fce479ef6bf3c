"""gan: the text-to-image GAN (`model.generator = "gan"`) with the default config on shapes — prompt fidelity by the
same judge and prompts as the token model, diversity, training time, speed (Keras, SavedModel, TFLite) and sizes."""

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfmm.apps.generate import Generate
from tfmm.apps.generate_stages import JudgeStage, with_training
from tfmm.apps.runner import Runner
from tfmm.config import SamplingConfig
from tfmm.data.caption_sources import object_words
from tfmm.evaluation import evaluate_generator, sample_diversity
from tfmm.export.tflite import TFLiteRunner
from tools.bench.harness import app_config, scratch, timed

SMOKE = ["data.shapes_config=tiny", "data.batch_size=16", "gan.channels=32", "gan.text_dim=16", "gan.noise_dim=8",
         "gan_train.epochs=1", "judge_train.epochs=1", "generation.eval_prompts=8", "export.representative_examples=4"]


def add_arguments(parser):
    parser.add_argument("--prompts", type=int, default=200, help="prompts per split judged for fidelity")


def seconds_per_image(function, count, repeats=3):
    function()  # warm-up (tracing)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) / count)
    return float(np.median(times))


def folder_megabytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2 ** 20


def measure(runner, config, task, train_seconds, judge, smoke):
    """The side-by-side measures of a trained text-to-image model ({row: value}) and its export's folder; shared with
    the generate suite."""
    app, words = runner.app, object_words(config.data.source)
    guidance = None if config.model.generator == "gan" else config.generation.guidance_scale
    sets = app.prompt_sets(config, config.generation.eval_prompts)
    fidelity = evaluate_generator(task, sets, judge, words, config.sampling.seed, config.sampling, None, guidance)
    diversity = sample_diversity(task, sets["test"][0][:4 if smoke else 25], 8, config.sampling.seed, config.sampling, guidance)
    texts, batches = sets["test"][0], (1, 2) if smoke else (1, 16)
    rows = {"prompt fidelity, test prompts": fidelity["test_prompt_fidelity"],
            "prompt fidelity, held-out colour–shape prompts": fidelity["heldout_prompt_fidelity"],
            "judge accuracy on the real images (test / held-out)":
                f"{fidelity['test_judge_accuracy_on_real_images']:.3f} / {fidelity['heldout_judge_accuracy_on_real_images']:.3f}",
            "distinct images among 8 of one prompt (share)": diversity["distinct_share"],
            "mean pixel difference between two images of one prompt": diversity["pairwise_pixel_difference"],
            "training, all stages (min)": round(train_seconds / 60, 1)}
    for batch in batches:
        rows[f"Keras `generate`, ms per image at batch {batch}"] = round(1000 * seconds_per_image(
            lambda: task.generate(texts[:batch], sampling=config.sampling, guidance_scale=guidance), batch), 1)
    version = runner.export(task, config)
    served = tf.saved_model.load(str(version))
    for batch in batches:
        call = lambda: served.signatures["generate"](prompt=tf.constant(texts[:batch]), seed=tf.constant(0, tf.int64),  # noqa: E731
                                                     temperature=tf.constant(1.0), top_k=tf.constant(0))
        rows[f"SavedModel `generate`, ms per image at batch {batch}"] = round(1000 * seconds_per_image(call, batch), 1)
    rows["SavedModel size (MB)"] = round(folder_megabytes(version) - folder_megabytes(version / "tflite"), 1)
    for path in sorted((version / "tflite").glob("*.tflite")):
        rows[f"TFLite {path.stem} (MB)"] = round(path.stat().st_size / 2 ** 20, 2)
        if path.stem.startswith("gan_generator"):
            tokens = task.preprocessor.tokenize_numpy(texts[:1])
            runner_ = TFLiteRunner(path)
            feed = {"text_ids": tokens["token_ids"], "padding_mask": tokens["padding_mask"],
                    "noise": np.zeros((1, task.backbone.noise_dim), np.float32)}
            rows[f"TFLite {path.stem}, ms per image at batch 1"] = round(1000 * seconds_per_image(lambda: runner_(**feed), 1), 1)
    parameters = {"gan": lambda: f"{task.backbone.count_params():,} generator + {task.discriminator.count_params():,} "
                                 "discriminator (training only)",
                  "tokens": lambda: f"{task.backbone.count_params():,} token transformer + {task.vqvae.count_params():,} VQ-VAE"}
    rows["parameters"] = parameters[config.model.generator]()
    return rows, version


def run(args, report):
    smoke = args.smoke
    with scratch() as folder:
        overrides = (SMOKE if smoke else [f"generation.eval_prompts={args.prompts}"]) + [
            'model.generator="gan"', f'judge_train.output_dir="{folder / "runs"}"']
        config, runner = app_config(Generate(), overrides, folder)
        keras.backend.clear_session()
        task, seconds = timed(lambda: runner.app.train(runner, config))
        history = (runner.app.run_path / "history.csv").read_text().splitlines()
        judge = Runner(JudgeStage()).train(with_training(config, "judge_train"))
        rows, version = measure(runner, config, task, seconds, judge, smoke)
        cooler = SamplingConfig(temperature=0.7, seed=config.sampling.seed)
        sets = runner.app.prompt_sets(config, config.generation.eval_prompts)
        truncated = evaluate_generator(task, {"test": sets["test"]}, judge, object_words(config.data.source),
                                       config.sampling.seed, cooler)
        rows["prompt fidelity, test prompts, temperature 0.7 (noise × 0.7)"] = truncated["test_prompt_fidelity"]
        parity = json.loads((Path(version) / "tflite" / "parity.json").read_text())
    report.record(test_prompt_fidelity=rows["prompt fidelity, test prompts"],
                  heldout_prompt_fidelity=rows["prompt fidelity, held-out colour–shape prompts"])
    g, t = config.gan, config.gan_train
    last = dict(zip(history[0].split(","), history[-1].split(",")))
    report.table("The GAN: fidelity, diversity, speed and size", ["measure", "value"], [[k, v] for k, v in rows.items()],
                 note=(f"Generator {g.channels} channels at 4×4 (halving to 16), word attention at {g.attention_sizes}, "
                       f"text encoders {g.text_layers} × {g.text_dim}; hinge + R1 (γ {g.r1_gamma}), discriminator rate "
                       f"× {g.discriminator_learning_rate}; {t.epochs} epochs at {t.learning_rate}, batch "
                       f"{config.data.batch_size}. Fidelity: {config.generation.eval_prompts} prompts per split, one sample "
                       f"each, temperature {config.sampling.temperature}; diversity: 8 samples of each of 25 test prompts. "
                       f"Last epoch: d_loss {float(last['d_loss']):.3f}, g_loss {float(last['g_loss']):.3f}, "
                       f"validation match accuracy {float(last['val_match_accuracy']):.3f}."))
    report.table("TFLite generator parity with Keras (sample prompts, fixed noise)", ["file", "pixels within 8/255", "max difference"],
                 [[name, entry["pixel_agreement"], f"{entry['max_pixel_difference']:.2e}"] for name, entry in parity.items()])
