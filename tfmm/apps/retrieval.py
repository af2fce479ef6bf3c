"""CLIP-style contrastive image–text retrieval: train, eval, zero-shot, index, search, export, predict.

`python -m tfmm.apps.retrieval` with no subcommand runs the main job: train the default config on
the built-in `shapes` data, evaluate, run zero-shot on held-out combinations, and export to
`saved_models/retrieval/<version>/`.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
from tfmm import cli
from tfmm.apps.model_parts import build_tokenizer, image_converter
from tfmm.apps.retrieval_config import RetrievalConfig
from tfmm.apps.runner import App, Runner
from tfmm.data import DataChecks, ImageAugmenter, build_pipeline, load_captioned_images, read_image_files
from tfmm.data.mixing import MIX_PARTNER, MIX_WEIGHT, mix_images
from tfmm.data.shapes import COMBINATIONS, HELDOUT_COMBINATIONS
from tfmm.encoders import build_image_encoder, build_text_encoder, parse_trainable
from tfmm.errors import TfmmError
from tfmm.evaluation import evaluate_retrieval, evaluate_zero_shot
from tfmm.export.contrastive import export_retriever
from tfmm.models import CLIPBackbone, ContrastiveRetriever, ContrastiveRetrieverPreprocessor
from tfmm.models.contrastive_retriever import check_templates
from tfmm.models.keras_hub_dual_encoder import (
    KerasHubContrastiveRetriever,
    load_dual_encoder_preset,
    load_preprocessor,
    set_tower_trainable,
)
from tfmm.retrieval import EmbeddingIndex
from tfmm.text import TextAugmenter
from tfmm.train.session import per_worker_batch
from tfmm.visualization import image_grid, plot_probabilities

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp"}
HELDOUT_CLASSES = [f"{c} {s}" for c, s in HELDOUT_COMBINATIONS]


def _captions(dataset):
    return [c.decode() for batch in dataset.map(lambda e: e["captions"]).ragged_batch(1024)
            for c in batch.flat_values.numpy()]


class Retrieval(App):
    name, description = "retrieval", __doc__.splitlines()[0]
    source = load_captioned_images
    config_class, task_class = RetrievalConfig, ContrastiveRetriever

    def build_preprocessor(self, config, train_examples):
        if config.model.preset:
            return load_preprocessor(config.model.preset)
        texts = lambda: _captions(train_examples) + TextAugmenter.vocabulary_words()  # noqa: E731
        tokenizer = build_tokenizer(config.model, texts, config.data.source)
        return ContrastiveRetrieverPreprocessor(tokenizer, image_converter(config), config.model.sequence_length)

    def build_task(self, config, preprocessor):
        m = config.model
        scale, bias = m.logit_scale_init, None
        if m.preset:  # a keras-hub CLIP/SigLIP: its towers, text length and learnt scale (and SigLIP's bias)
            preset = load_dual_encoder_preset(m.preset, preprocessor=preprocessor)
            backbone, scale, bias = preset.backbone, min(preset.logit_scale, m.logit_scale_max), preset.logit_bias
            for tower in ("image", "text"):
                trainable = getattr(m, f"{tower}_encoder").trainable
                set_tower_trainable(backbone, tower, parse_trainable(trainable, f"model.{tower}_encoder.trainable"))
        else:
            backbone = CLIPBackbone(build_image_encoder(m.image_encoder, config.data.image_size),
                                    build_text_encoder(m.text_encoder, preprocessor.vocabulary_size, m.sequence_length),
                                    m.embedding_dim, m.projection_hidden_dim)
        task_class = KerasHubContrastiveRetriever if m.preset else ContrastiveRetriever
        return task_class(backbone, preprocessor, m.loss.name, scale, m.logit_scale_max, getattr(m.loss, "margin", 0.2),
                          config.zero_shot.templates, logit_bias_init=bias if m.loss.name == "sigmoid" else None)

    def ready_made_task(self, config):
        """A usable model without training: a keras-hub preset as it is (zero-shot, index, search, export)."""
        if config.model.preset:
            return self.build_task(config, self.build_preprocessor(config, None)), config.model.preset
        return None

    def pipeline(self, config, examples, training, shard=None, repeat=False):
        """Batches of raw `{"images", "text"}`: one caption per image (drawn at random when training)."""
        data = config.data
        images = ImageAugmenter(data.augment) if training else None
        texts = TextAugmenter(data.text_augment.deletion, data.text_augment.swap, data.text_augment.synonyms) if training else None

        def pick_caption(example, seed):
            count = tf.shape(example["captions"])[0]
            index = tf.random.stateless_uniform((), seed, 0, count, dtype=tf.int32) if training else 0
            return {"images": example["image"], "text": example["captions"][index]}

        mixing = training and (data.augment.mixup or data.augment.cutmix)

        def augment(batch, seed):
            if not training:
                return batch
            x = {"images": images(batch["images"], seed),
                 "text": texts(batch["text"], tf.random.experimental.stateless_fold_in(seed, 1))}
            if not mixing:
                return x
            x["images"], partner, weight = mix_images(x["images"], tf.random.experimental.stateless_fold_in(seed, 2),
                                                      data.augment.mixup, data.augment.cutmix)
            return x, {MIX_PARTNER: partner, MIX_WEIGHT: weight}  # soft targets for the loss

        return build_pipeline(examples, per_worker_batch(data.batch_size, shard), training=training,
                              example_fn=pick_caption, batch_fn=augment, cache=data.cache,
                              shuffle_buffer=data.shuffle_buffer, seed=config.train.seed, shard=shard, repeat=repeat)

    def evaluate(self, task, config, split, args=None):
        metrics = evaluate_retrieval(task, self.load_split(config, split, DataChecks(config.data.strict)))
        return {**metrics, "split": split}

    def zero_shot(self, task, config, split="heldout", class_names=None, templates=None):
        """Zero-shot accuracy on `split` (default `heldout`: colour–shape combinations never seen in
        training), and on its images classified among the held-out combinations only."""
        class_names = class_names or config.zero_shot.class_names or list(COMBINATIONS)
        subset = HELDOUT_CLASSES if split == "heldout" and set(HELDOUT_CLASSES) <= set(class_names) else None
        metrics = evaluate_zero_shot(task, self.load_split(config, split, DataChecks(config.data.strict)), class_names,
                                     COMBINATIONS, templates, subset)
        return {**metrics, "split": split}

    def main_report(self, runner, task, config):
        self.report("test split", self.evaluate(task, config, "test"))
        if config.data.source == "shapes":
            self.report("zero-shot, held-out colour–shape combinations", self.zero_shot(task, config))

    def main_pictures(self, task, config, folder):
        examples = list(self.load_split(config, "test", DataChecks(strict=config.data.strict)).take(200).as_numpy_iterator())
        images = np.stack([e["image"] for e in examples])
        queries = [examples[i]["captions"][0].decode() for i in range(0, min(len(examples), 3))]
        scores = task.embed_texts(queries) @ task.embed_images(images).T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
        return [image_grid([images[i] for row in top for i in row], len(queries), folder / "search.png", queries)]

    def export_samples(self, config, checks):
        samples = list(self.load_split(config, "validation", checks).take(config.export.representative_examples)
                       .as_numpy_iterator())
        return {"images": np.stack([e["image"] for e in samples]), "texts": [e["captions"][0].decode() for e in samples]}

    def export(self, task, config, samples, base_dir, name, quantizations):
        return export_retriever(task, config, samples, base_dir, name, quantizations)

    def predict(self, task, config, args):
        classes = [c.strip() for c in (args.classes or "").split(",") if c.strip()] or \
            config.zero_shot.class_names or list(COMBINATIONS)
        result = task.zero_shot(read_image_files(args.images), classes)
        predictions = []
        for path, row in zip(args.images, result["probabilities"]):
            top = np.argsort(-row)[:5]
            predictions.append({"image": str(path), "label": classes[top[0]],
                                "top5": [{"class": classes[i], "probability": float(row[i])} for i in top]})
            print(f"{path}: {classes[top[0]]}  (" + ", ".join(f"{classes[i]} {row[i]:.3f}" for i in top) + ")")
        if args.plot:
            pixels = task.preprocessor.image_converter.pixels(tf.constant(read_image_files(args.images[:1]))).numpy()[0]
            groups = {"zero-shot": (classes, result["probabilities"][0])}
            print(f"wrote {plot_probabilities(groups, str(args.images[0]), args.plot, image=pixels)}")
        return {"predictions": predictions}

    def add_predict_arguments(self, parser):
        parser.add_argument("images", nargs="+", help="image files")
        parser.add_argument("--classes", help="comma-separated class names (default: config or shapes combinations)")
        parser.add_argument("--plot", help="write a PNG of the first image with its zero-shot probabilities")

    def add_commands(self, runner, app_parser):
        s = app_parser.command("zero-shot", lambda args: cmd_zero_shot(self, runner, args), "zero-shot accuracy", output=True)
        s.add_argument("--split", default="heldout")
        s.add_argument("--classes", help="comma-separated class names (default: config or shapes combinations)")
        s.add_argument("--template", action="append", help="prompt template with {} (repeatable)")
        s = app_parser.command("index", lambda args: cmd_index(runner, args), "embed images and/or captions into an index")
        s.add_argument("--index", required=True, help="index file (.npz); created or extended")
        s.add_argument("--images", help="folder of images to add (new or changed files only)")
        s.add_argument("--captions", help="text file with one caption per line to add")
        s = app_parser.command("search", lambda args: cmd_search(runner, args), "text → top-k images, or image → captions",
                               output=True)
        s.add_argument("--index", required=True)
        s.add_argument("--text")
        s.add_argument("--image")
        s.add_argument("--top-k", type=int, default=5)
        s.add_argument("--plot", help="write a PNG of the query and the images it found (a --text search)")
        s = app_parser.command("save-presets", lambda args: cmd_save_presets(runner, args),
                               "write the trained encoders as keras-hub preset directories")
        s.add_argument("--output", required=True, help="directory to create")


def cmd_zero_shot(app, runner, args):
    task, config, path = runner.load(args)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes is not None else None
    if classes is not None and not all(classes):
        raise TfmmError(f"--classes {args.classes!r} has an empty class name")
    metrics = app.zero_shot(task, config, args.split, classes, check_templates(args.template, "--template") if args.template else None)
    app.report(f"zero-shot on {args.split} ({path})", metrics)
    if args.output:
        cli.write_json(args.output, metrics)


def cmd_index(runner, args):
    task, config, _ = runner.load(args)
    if not args.images and not args.captions:
        raise TfmmError("index needs --images DIR and/or --captions FILE")
    dim = task.backbone.embedding_dim
    index = EmbeddingIndex.load(args.index) if Path(args.index).is_file() else EmbeddingIndex(dim)
    if index.dim != dim:
        raise TfmmError(f"{args.index} holds {index.dim}-d embeddings; this model makes {dim}-d")
    added_images = added_captions = 0
    checks = DataChecks(strict=config.data.strict)
    if args.images:
        folder = Path(args.images)
        if not folder.is_dir():
            raise TfmmError(f"image folder not found: {folder}")
        files = sorted(p.resolve() for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        files = index.stale_images(files, [p.stat().st_mtime for p in files])
        files = [p for p in files if checks.images.keep(p)]
        if files:
            index.add_images(files, task.embed_images([Path(p).read_bytes() for p in files]),
                             [Path(p).stat().st_mtime for p in files])
        added_images = len(files)
    if args.captions:
        path = Path(args.captions)
        if not path.is_file():
            raise TfmmError(f"caption file not found: {path}")
        lines = list(dict.fromkeys(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()))
        if lines:
            added_captions = index.add_texts(lines, task.embed_texts(lines))
    index.save(args.index)
    print(f"{args.index}: added {added_images} image(s) and {added_captions} caption(s); "
          f"now {len(index.image_paths)} images, {len(index.texts)} captions")
    if checks.summary():
        print(checks.summary())


def cmd_search(runner, args):
    task, _, _ = runner.load(args)
    index = EmbeddingIndex.load(args.index)
    if bool(args.text) == bool(args.image):
        raise TfmmError("search needs exactly one of --text or --image")
    if args.text:
        results = index.search(task.embed_texts([args.text])[0], "images", args.top_k)
    else:
        results = index.search(task.embed_images(read_image_files([args.image]))[0], "texts", args.top_k)
    rows = [{"rank": rank, "score": score, "match": match} for rank, (match, score) in enumerate(results, 1)]
    for row in rows:
        print(f"{row['rank']:>3}  {row['score']:.4f}  {row['match']}")
    if args.plot:
        if not args.text:
            raise TfmmError("--plot draws the images a --text search finds; an --image search finds captions")
        pixels = task.preprocessor.image_converter.pixels(tf.constant(read_image_files([m for m, _ in results]))).numpy()
        print(f"wrote {image_grid(list(pixels), 1, args.plot, [args.text])}")
    if args.output:
        cli.write_json(args.output, {"query": args.text or args.image, "results": rows})


def cmd_save_presets(runner, args):
    """The trained encoders as keras-hub preset directories, for other apps to start from:
    `<output>/image_encoder/` and `<output>/text_encoder/` (with its WordPiece vocabulary)."""
    task, _, _ = runner.load(args)
    output = Path(args.output)
    if output.exists() and any(output.iterdir()):
        raise TfmmError(f"--output {output} exists and is not empty")
    task.backbone.image_encoder.save_to_preset(str(output / "image_encoder"))
    task.backbone.text_encoder.save_to_preset(str(output / "text_encoder"))
    task.preprocessor.tokenizer.save_to_preset(str(output / "text_encoder"))
    print(f"wrote {output / 'image_encoder'} and {output / 'text_encoder'} "
          "(use as model.image_encoder.weights / model.text_encoder.weights)")


def main(argv=None):
    return Runner(Retrieval()).main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
