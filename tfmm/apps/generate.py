"""Text-to-image: a VQ-VAE (image tokens) and an autoregressive token transformer, with editing; or a GAN.

`python -m tfmm.apps.generate` with no subcommand runs the main job on the built-in `shapes`:
train the VQ-VAE (`train-vqvae`), encode the images to token records and train the token
transformer (`train`), train the scene reader that judges fidelity (`train-judge`), evaluate
(reconstruction PSNR, codebook use, prompt fidelity), write a sample grid, and export to
`saved_models/generate/<version>/`. With `--set model.generator="gan"` the same job trains the
text-to-image GAN (`gan`, `gan_train` sections) instead of both token stages.
"""

import dataclasses
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
from tfmm import cli
from tfmm.apps.generate_config import GENERATION_FLAGS, GenerateConfig, check_generator_settings
from tfmm.apps.generate_stages import JudgeStage, VQVAEStage, heldout_split_point, with_training
from tfmm.apps.model_parts import build_tokenizer, image_converter
from tfmm.apps.runner import MIXING_REFUSED, App, Runner
from tfmm.cli import add_shortcut_arguments
from tfmm.data import DataChecks, build_pipeline, read_image_files
from tfmm.data.caption_sources import load_caption_examples, object_words
from tfmm.data.token_records import read_token_records, write_token_records
from tfmm.errors import TfmmError
from tfmm.evaluation import evaluate_generator, reconstruction_metrics
from tfmm.export.gan import export_gan
from tfmm.export.generator import export_generator
from tfmm.models import TextToImageBackbone, TextToImageGAN, TextToImageGenerator, TextToImagePreprocessor, from_preset
from tfmm.models.presets import preset_path
from tfmm.models.region_editing import edit_where
from tfmm.models.text_to_image_gan import build_gan
from tfmm.text import TextAugmenter
from tfmm.train.session import per_worker_batch
from tfmm.visualization import image_grid, save_png


class Generate(App):
    name, description = "generate", __doc__.splitlines()[0]
    config_class, task_class = GenerateConfig, (TextToImageGenerator, TextToImageGAN)
    model_sections = ("model", "vqvae", "gan")
    shortcuts = GENERATION_FLAGS
    cannot_honour = {"data.text_augment.deletion": "a prompt without one of its words asks for something else",
                     "data.text_augment.swap": "swapped words change what a prompt asks for (\"left of\")",
                     "data.augment.mixup": MIXING_REFUSED, "data.augment.cutmix": MIXING_REFUSED}
    vqvae = token_dir = run_path = None  # set by `train` before the runner reads token records

    def train(self, runner, config, args=None):
        """Stage 2: encodes the splits with a trained VQ-VAE to token records in the run directory, then
        trains the token transformer on them. The VQ-VAE is `--vqvae`, else the latest; the main job
        (no `args`) trains a new one first. The GAN trains in one stage from images, with `gan_train`."""
        self.run_path = Path(getattr(args, "run_dir", None) or cli.run_dir(config.train.output_dir, self.name))
        if is_gan(config):
            gan = dataclasses.replace(config, train=dataclasses.replace(config.gan_train, output_dir=config.train.output_dir))
            return runner.train(gan, self.run_path, getattr(args, "force", False))
        if args is None:
            vqvae_path = cli.run_dir(config.vqvae_train.output_dir, VQVAEStage.name)
            if Runner(VQVAEStage()).train(with_training(config, "vqvae_train"), vqvae_path) is None:
                return None  # a non-chief worker
        else:
            vqvae_path = getattr(args, "vqvae", None) or cli.latest_run(config.vqvae_train.output_dir, VQVAEStage.name)
        self.vqvae = from_preset(vqvae_path)
        if self.vqvae.backbone.image_size != config.data.image_size:
            raise TfmmError(f"the VQ-VAE in {vqvae_path} takes {self.vqvae.backbone.image_size}px images; "
                            f"data.image_size is {config.data.image_size}")
        self.token_dir = self.run_path / "tokens"
        return runner.train(config, self.run_path, getattr(args, "force", False))

    def load_split(self, config, split, checks):
        """Token records of `split`, written once per run (a resumed run keeps them); the GAN's: the examples."""
        if is_gan(config):
            return load_caption_examples(config.data, split, checks.images)
        pattern = self.token_dir / split / "tokens-*.tfrecord"
        if not tf.io.gfile.glob(str(pattern)):
            started, examples = time.time(), load_caption_examples(config.data, split, checks.images)

            def batches():
                for batch in examples.ragged_batch(128):
                    yield ([[c.decode() for c in row] for row in batch["captions"].to_list()],
                           self.vqvae.encode(batch["image"].numpy()), [o.decode() for o in batch["objects"].numpy()])

            _, count = write_token_records(batches(), self.token_dir / split)
            grid = self.vqvae.backbone.grid_size
            print(f"encoded {count} {split} images to {grid}×{grid} tokens in {time.time() - started:.0f} s")
        return read_token_records(pattern)

    def build_preprocessor(self, config, train_examples):
        extra = TextAugmenter.vocabulary_words() if config.data.text_augment.synonyms else []
        captions = lambda: [c.decode() for e in train_examples.map(lambda e: e["captions"]).as_numpy_iterator()  # noqa: E731
                            for c in e] + extra
        tokenizer = build_tokenizer(config.model, captions, config.data.source)
        return TextToImagePreprocessor(tokenizer, image_converter(config), config.model.sequence_length)

    def build_task(self, config, preprocessor):
        if is_gan(config):
            return build_gan(preprocessor, config.data.image_size, config.gan)
        m, vqvae, s = config.model, self.vqvae.backbone, config.sampling
        backbone = TextToImageBackbone(preprocessor.vocabulary_size, m.sequence_length, vqvae.num_codes, vqvae.grid_size ** 2,
                                       m.hidden_dim, m.num_layers, m.num_heads, m.intermediate_dim, m.dropout,
                                       name="token_transformer")
        return TextToImageGenerator(backbone, vqvae, preprocessor, config.generation.guidance_scale, s.temperature,
                                    s.top_k, s.top_p, name="generator")

    def pipeline(self, config, examples, training, shard=None, repeat=False):
        """Batches of raw `{"prompts", "image_ids"}` (the GAN's: `{"prompts", "images"}`): one caption per image
        drawn at random, replaced by the empty prompt with probability `data.text_dropout` in training (for
        classifier-free guidance; not for the GAN)."""
        dropout = config.data.text_dropout if training else 0.0
        synonyms = TextAugmenter(synonyms=config.data.text_augment.synonyms)
        synonyms = synonyms if training and synonyms.active else None

        gan = is_gan(config)

        def pick(example, seed):
            count = tf.shape(example["captions"])[0]
            caption = example["captions"][tf.random.stateless_uniform([], seed, 0, count, dtype=tf.int32)]
            if gan:
                return {"prompts": caption, "images": example["image"]}
            dropped = tf.random.stateless_uniform([], seed + 1) < dropout
            return {"prompts": tf.where(dropped, "", caption), "image_ids": example["tokens"]}

        def augment(batch, seed):
            return {**batch, "prompts": synonyms(batch["prompts"], seed)}

        return build_pipeline(examples, per_worker_batch(config.data.batch_size, shard), training=training,
                              example_fn=pick, batch_fn=augment if synonyms else None, cache=config.data.cache,
                              shuffle_buffer=config.data.shuffle_buffer, seed=config.train.seed, shard=shard, repeat=repeat)

    def prompt_sets(self, config, limit):
        """{split: (first captions, objects, real uint8 images)} of up to `limit` images per split; of the
        held-out split only the half the judge did not train on."""
        checks, sets = DataChecks(config.data.strict), {}
        for split in (["test", "heldout"] if config.data.source == "shapes" else ["test"]):
            dataset = load_caption_examples(config.data, split, checks.images)
            if split == "heldout":
                dataset = dataset.skip(heldout_split_point(config, checks))
            rows = list(dataset.take(limit).as_numpy_iterator())
            sets[split] = ([r["captions"][0].decode() for r in rows], [r["objects"].decode() for r in rows],
                           np.stack([r["image"] for r in rows]))
        return sets

    def learning_rate_multipliers(self, config):
        return (lambda model: model.learning_rate_multipliers()) if is_gan(config) else None

    def check_config(self, config):
        check_generator_settings(config)

    def judge(self, config, path=None):
        """The scene reader: `path`, else the latest trained, else one trained now."""
        if path:
            return from_preset(path)
        try:
            return from_preset(cli.latest_run(config.judge_train.output_dir, JudgeStage.name))
        except TfmmError:
            print("training the scene reader that judges fidelity (once; later evals reuse it)")
            return Runner(JudgeStage()).train(with_training(config, "judge_train"))

    def evaluate(self, task, config, split, args=None, judge=None):
        test = load_caption_examples(config.data, split, DataChecks(config.data.strict).images)
        metrics = {} if is_gan(config) else {f"reconstruction_{k}": v for k, v in reconstruction_metrics(task, test).items()}
        words = object_words(config.data.source)
        judge = judge or (self.judge(config, getattr(args, "judge", None)) if words else None)
        retrieval = from_preset(args.retrieval_model) if getattr(args, "retrieval_model", None) else None
        metrics.update(evaluate_generator(task, self.prompt_sets(config, config.generation.eval_prompts), judge, words,
                                          config.sampling.seed, config.sampling, retrieval, guidance(config)))
        return metrics

    def main_report(self, runner, task, config):
        judge = Runner(JudgeStage()).train(with_training(config, "judge_train")) if object_words(config.data.source) else None
        self.report("evaluation", self.evaluate(task, config, "test", judge=judge))

    def main_pictures(self, task, config, folder):
        prompts = self.prompt_sets(config, 6)["test"][0]
        images = task.generate([p for p in prompts for _ in range(4)], config.sampling.seed, config.sampling,
                               guidance(config))
        return [image_grid(images, len(prompts), folder / "samples.png", prompts)]

    def export_samples(self, config, checks):
        examples = load_caption_examples(config.data, "validation", checks.images).take(config.export.representative_examples)
        rows = list(examples.as_numpy_iterator())
        return {"images": np.stack([e["image"] for e in rows]), "prompts": [e["captions"][0].decode() for e in rows]}

    def export(self, task, config, samples, base_dir, name, quantizations):
        export = export_gan if isinstance(task, TextToImageGAN) else export_generator
        return export(task, config, samples, base_dir, name, quantizations)

    def predict(self, task, config, args):
        """Prompts → `generation.samples_per_prompt` PNG files each and a grid, in --output-dir."""
        unknown = task.preprocessor.unknown_prompts(args.prompts)
        for index in unknown:
            print(f"warning: prompt #{index} {args.prompts[index]!r} has no word the model knows: the image follows no text")
        count, out = config.generation.samples_per_prompt, Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        images = task.generate([p for p in args.prompts for _ in range(count)], config.sampling.seed, config.sampling,
                               guidance(config))
        files = [str(save_png(image, out / f"prompt{i // count}_sample{i % count}.png")) for i, image in enumerate(images)]
        image_grid(images, len(args.prompts), out / "grid.png", args.prompts)
        print(f"wrote {len(images)} images and grid.png to {out}")
        return {"prompts": args.prompts, "files": files, "grid": str(out / "grid.png"), "unknown_prompts": unknown}

    def add_train_arguments(self, parser):
        super().add_train_arguments(parser)
        parser.add_argument("--vqvae", help="a trained VQ-VAE (preset or run; default: the latest)")

    def add_eval_arguments(self, parser):
        super().add_eval_arguments(parser)
        parser.add_argument("--judge", help="the scene reader (default: the latest trained, else train one)")
        parser.add_argument("--retrieval-model", help="a trained retrieval model: also report image–text similarity")
        _add_sampling_arguments(parser)

    def add_predict_arguments(self, parser):
        parser.add_argument("prompts", nargs="+")
        parser.add_argument("--output-dir", default="samples")
        _add_sampling_arguments(parser)

    def add_commands(self, runner, app_parser):
        for stage, section in ((VQVAEStage(), "vqvae_train"), (JudgeStage(), "judge_train")):
            stage.add_train_arguments(app_parser.command(
                f"train-{stage.name.split('_')[1]}", lambda args, stage=stage, section=section: train_stage(
                    runner, stage, section, args), f"train {stage.description}", model=False))
        s = app_parser.command("edit", lambda args: cmd_edit(runner, args),
                               "re-draw a region of an image (a box, or what --where names) for a prompt")
        s.add_argument("image")
        where = s.add_mutually_exclusive_group(required=True)
        where.add_argument("--region", help="x0,y0,x1,y1 in pixels of the model's image size")
        where.add_argument("--where", help="words naming the region, e.g. 'the red circle' (needs --segmenter)")
        s.add_argument("--segmenter", help="a trained segment-app model (preset or run directory) for --where")
        s.add_argument("--to", "--prompt", dest="prompt", required=True, help="what to draw there")
        s.add_argument("--output", default="edited.png")
        _add_sampling_arguments(s)


def is_gan(config):
    return config.model.generator == "gan"


def guidance(config):
    """The classifier-free guidance scale to sample with: the token model's; the GAN has none."""
    return None if is_gan(config) else config.generation.guidance_scale


def _add_sampling_arguments(parser):
    add_shortcut_arguments(parser, GENERATION_FLAGS)


def train_stage(runner, stage, section, args):
    config = runner.resolve_config(args)
    task = Runner(stage).train(with_training(config, section), args.run_dir, args.force)
    if task is not None:
        stage.report(f"validation ({stage.name})", stage.evaluate(task, config, "validation"))
    return task


def cmd_edit(runner, args):
    if bool(args.where) != bool(args.segmenter):
        raise TfmmError("--where needs --segmenter PATH (a trained segment model), and --segmenter needs --where")
    task, config, _ = runner.load(args)
    if isinstance(task, TextToImageGAN):
        task.edit()  # refuses, saying why
    image = read_image_files([args.image])[0]
    options = (config.generation.edit_candidates, config.sampling.seed, config.sampling, config.generation.guidance_scale)
    if args.where:
        edited, info = edit_where(task, from_preset(preset_path(args.segmenter)), image, args.where, args.prompt,
                                  *options)
    else:
        try:
            box = tuple(float(v) for v in args.region.split(","))
        except ValueError:
            box = ()
        if len(box) != 4:
            raise TfmmError(f"--region {args.region!r}: give x0,y0,x1,y1 in pixels")
        edited, info = task.edit(image, box, args.prompt, *options)
    save_png(edited, args.output)
    print(f"re-sampled {info['cells']} of {info['tokens']} tokens; wrote {args.output}")


def main(argv=None):
    return Runner(Generate()).main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
