"""generate: both stages with the default config on shapes — reconstruction, prompt fidelity judged by the scene
reader, sampling speed with and without the key/value cache, the exported `generate` signature — and the GAN trained
in the same run, side by side with the token model."""

import json

import keras
import tensorflow as tf

from tfmm.apps.generate import Generate
from tfmm.apps.generate_stages import JudgeStage, with_training
from tfmm.apps.runner import Runner
from tfmm.data.caption_sources import object_words
from tfmm.evaluation import evaluate_generator
from tools.bench.harness import app_config, scratch, timed
from tools.bench.suites import gan
from tools.bench.suites.gan import seconds_per_image

SMOKE = ["data.shapes_config=tiny", "data.batch_size=16", "vqvae.hidden_dim=16", "vqvae.num_codes=32", "vqvae.code_dim=8",
         "vqvae.downsample=8", "model.hidden_dim=32", "model.num_layers=1", "model.num_heads=2", "model.intermediate_dim=32",
         "train.epochs=1", "vqvae_train.epochs=1", "judge_train.epochs=1", "generation.eval_prompts=8",
         "export.representative_examples=4"]


def add_arguments(parser):
    parser.add_argument("--prompts", type=int, default=200, help="prompts per split judged for fidelity")
    parser.add_argument("--without-gan", action="store_true", help="leave out the GAN and the side-by-side table")


def run(args, report):
    smoke = args.smoke
    with scratch() as folder:
        overrides = (SMOKE if smoke else [f"generation.eval_prompts={args.prompts}"]) + [
            f'vqvae_train.output_dir="{folder / "runs"}"', f'judge_train.output_dir="{folder / "runs"}"']
        config, runner = app_config(Generate(), overrides, folder)
        keras.backend.clear_session()
        task, seconds = timed(lambda: runner.app.train(runner, config))  # both stages, as the main job
        judge = Runner(JudgeStage()).train(with_training(config, "judge_train"))
        metrics = runner.app.evaluate(task, config, "test", judge=judge)
        sets = runner.app.prompt_sets(config, config.generation.eval_prompts)
        texts = sets["test"][0]
        no_guidance = evaluate_generator(_Unguided(task), {"test": sets["test"]}, judge, object_words(config.data.source))
        tokens = task.grid_size ** 2
        rows = [["reconstruction PSNR (test, dB)", metrics["reconstruction_psnr"]],
                ["codebook usage / perplexity (test)", f"{metrics['reconstruction_codebook_usage']:.3f} / "
                                                       f"{metrics['reconstruction_perplexity']:.1f}"],
                ["prompt fidelity, test prompts", metrics["test_prompt_fidelity"]],
                ["prompt fidelity, test prompts, no guidance", no_guidance["test_prompt_fidelity"]],
                ["prompt fidelity, held-out colour–shape prompts", metrics["heldout_prompt_fidelity"]],
                ["judge accuracy on the real images of those prompts (test / held-out)",
                 f"{metrics['test_judge_accuracy_on_real_images']:.3f} / {metrics['heldout_judge_accuracy_on_real_images']:.3f}"],
                ["judge accuracy on their VQ-VAE reconstructions: the fidelity ceiling (test / held-out)",
                 f"{metrics['test_judge_accuracy_on_reconstructions']:.3f} / "
                 f"{metrics['heldout_judge_accuracy_on_reconstructions']:.3f}"],
                ["both stages, training (min)", round(seconds / 60, 1)]]
        report.record(test_prompt_fidelity=metrics["test_prompt_fidelity"], psnr=metrics["reconstruction_psnr"],
                      heldout_prompt_fidelity=metrics["heldout_prompt_fidelity"])
        speed = []
        for batch in ((1, 2) if smoke else (1, 16)):
            prompts = texts[:batch]
            cached = seconds_per_image(lambda: task.sample_tokens(prompts), batch)
            uncached = seconds_per_image(lambda: task.sample_tokens(prompts, use_cache=False), batch, repeats=1)
            speed.append([batch, round(cached * 1000), round(uncached * 1000), f"{uncached / cached:.1f}×"])
        version = runner.export(task, config)
        served = tf.saved_model.load(str(version))
        for batch in ((1, 2) if smoke else (1, 16)):
            call = lambda: served.signatures["generate"](prompt=tf.constant(texts[:batch]), seed=tf.constant(0, tf.int64),  # noqa: E731
                                                         temperature=tf.constant(1.0), top_k=tf.constant(0))
            rows.append([f"SavedModel `generate`, ms per image at batch {batch}", round(seconds_per_image(call, batch) * 1000)])
        parity = json.loads((version / "tflite" / "parity.json").read_text())
        rows.append(["TFLite VQ-VAE decoder parity (max pixel difference, float32)",
                     f"{parity['vqvae_decoder_float32.tflite']['max_pixel_difference']:.2e}"])
        side_by_side = {"token transformer": gan.measure(runner, config, task, seconds, judge, smoke)[0]}
        if not args.without_gan:
            gan_config, gan_runner = app_config(Generate(), (gan.SMOKE if smoke else [f"generation.eval_prompts={args.prompts}"])
                                                + ['model.generator="gan"'], folder / "gan")
            keras.backend.clear_session()
            gan_task, gan_seconds = timed(lambda: gan_runner.app.train(gan_runner, gan_config))
            side_by_side["GAN"] = gan.measure(gan_runner, gan_config, gan_task, gan_seconds, judge, smoke)[0]
    v, m = config.vqvae, config.model
    report.table("Reconstruction, prompt fidelity and the export", ["measure", "value"], rows,
                 note=(f"VQ-VAE ×{v.downsample} ({tokens} tokens per {config.data.image_size}px image), {v.num_codes} codes of "
                       f"{v.code_dim}, {config.vqvae_train.epochs} epochs; token transformer {m.num_layers} × {m.hidden_dim}, "
                       f"{config.train.epochs} epochs. Fidelity: {config.generation.eval_prompts} prompts per split, one "
                       f"sample each, guidance {config.generation.guidance_scale}, temperature {config.sampling.temperature}, "
                       f"top-k {config.sampling.top_k or 'all'}."))
    names = list(side_by_side)
    measures = list(dict.fromkeys(key for rows_ in side_by_side.values() for key in rows_))
    report.table("Token transformer and GAN side by side (default configs, one run, the same judge and prompts)",
                 ["measure", *names], [[m, *(side_by_side[n].get(m, "—") for n in names)] for m in measures])
    report.table(f"Sampling time per image, {tokens} tokens (median of 3 after warm-up; without the cache: one pass)",
                 ["prompts per call", "with KV cache (ms)", "without cache (ms)", "cache speed-up"], speed)


class _Unguided:
    """The generator with classifier-free guidance off, for the fidelity row that shows what guidance adds."""

    def __init__(self, task):
        self.task = task

    def generate(self, prompts, seed=0, sampling=None, guidance_scale=None):
        return self.task.generate(prompts, seed, sampling, guidance_scale=1.0)
