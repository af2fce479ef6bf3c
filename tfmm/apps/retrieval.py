"""CLIP-style contrastive image–text retrieval: train, eval, zero-shot, index, search, export, predict.

`python -m tfmm.apps.retrieval` with no subcommand runs the main job: train the default
config on the built-in `shapes` data, evaluate, run zero-shot on held-out combinations,
and export to `saved_models/retrieval/<version>/`.
"""

import dataclasses
from pathlib import Path

import numpy as np

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
import tensorflow as tf

from tfmm import cli
from tfmm.apps.model_parts import build_encoders, check_model_names
from tfmm.apps.run_files import TrainedRun
from tfmm.config import DataConfig, ExportConfig, TrainConfig
from tfmm.data import ImageAugmenter, ImageCheck, build_pipeline, load_captioned_images, to_float
from tfmm.data.images import decode_and_resize
from tfmm.data.shapes import COMBINATIONS, HELDOUT_COMBINATIONS
from tfmm.encoders import preset_vocabulary
from tfmm.errors import TfmmError
from tfmm.files import atomic_write
from tfmm.losses import CONTRASTIVE_LOSSES
from tfmm.export.contrastive import export_retriever
from tfmm.metrics import recall_at_k, zero_shot_accuracy
from tfmm.models import CLIPBackbone, ContrastiveRetriever
from tfmm.text import TextAugmenter, TextPreprocessor, learn_vocabulary, save_vocabulary
from tfmm.train.session import TrainingSession, count_examples, per_worker_batch

TASK = "retrieval"


@dataclasses.dataclass
class RetrievalModelConfig:
    image_encoder: str = "cnn"  # cnn, resnet, vit
    image_encoder_size: str = "small"  # tiny, small, base
    image_encoder_weights: str = ""  # a keras-hub preset directory or a .weights.h5 (local files only)
    image_encoder_trainable: str = "full"  # full, frozen, or top-N (fine-tune the last N blocks)
    text_encoder: str = "transformer"  # gru, transformer, bert
    text_encoder_size: str = "small"
    text_encoder_weights: str = ""
    text_encoder_trainable: str = "full"
    embedding_dim: int = 128
    projection_hidden_dim: int = 0
    sequence_length: int = 32
    vocabulary_size: int = 1000
    loss: str = "infonce"  # infonce, triplet
    triplet_margin: float = 0.2
    logit_scale_init: float = 1 / 0.07
    logit_scale_max: float = 100.0


@dataclasses.dataclass
class ZeroShotConfig:
    class_names: list = dataclasses.field(default_factory=list)  # empty: the shapes colour–shape combinations
    templates: list = dataclasses.field(default_factory=lambda: [
        "a {}", "a picture of a {}", "there is a {}", "an image showing a {}", "just a {}",
    ])


@dataclasses.dataclass
class RetrievalConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: RetrievalModelConfig = dataclasses.field(default_factory=RetrievalModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    zero_shot: ZeroShotConfig = dataclasses.field(default_factory=ZeroShotConfig)


# ---------------------------------------------------------------------------------------------- data


def examples(config, split, check):
    return load_captioned_images(config.data, split, check)


def training_captions(dataset):
    captions = []
    for batch in dataset.map(lambda e: e["captions"]).ragged_batch(1024):
        captions.extend(c.decode() for c in batch.flat_values.numpy())
    return captions


def build_preprocessor(config, train_examples):
    """The text preprocessor: the pretrained text encoder's vocabulary, or one learnt from training captions."""
    vocabulary = preset_vocabulary(config.model.text_encoder_weights) if config.model.text_encoder_weights else None
    if vocabulary is None:
        captions = training_captions(train_examples)
        if not captions:
            raise TfmmError(f"data.source {config.data.source}: the training split has no captions")
        vocabulary = learn_vocabulary(captions + TextAugmenter.vocabulary_words(), config.model.vocabulary_size)
    return TextPreprocessor(vocabulary, config.model.sequence_length)


def pipeline(config, dataset, preprocessor, training, shard=None, repeat=False):
    """Batches of `{"images", "token_ids", "padding_mask"}`: one caption per image (random when training).

    `data.batch_size` is the global batch: with `shard=(workers, index)` each worker batches its share.
    """
    augment = config.data.augment
    image_augmenter = ImageAugmenter(augment, seed=config.train.seed) if training else None
    text_augmenter = TextAugmenter(augment.text_deletion, augment.text_swap, augment.text_synonyms) if training else None

    def pick_caption(example, seed):
        captions = example["captions"]
        count = tf.shape(captions)[0]
        index = tf.random.stateless_uniform((), seed, 0, count, dtype=tf.int32) if training else 0
        return {"images": example["image"], "text": captions[index]}

    def to_inputs(batch):
        images = to_float(batch["images"])
        text = batch["text"]
        if training and image_augmenter.active:
            images = image_augmenter(images)
        if training and text_augmenter.active:
            text = text_augmenter(text)
        return {"images": images, **preprocessor(text)}

    return build_pipeline(
        dataset, per_worker_batch(config.data.batch_size, shard), training=training, example_fn=pick_caption, batch_fn=to_inputs,
        cache=config.data.cache, shuffle_buffer=config.data.shuffle_buffer, seed=config.train.seed, shard=shard,
        repeat=repeat,
    )


# --------------------------------------------------------------------------------------------- model


def check_names(config):
    """Config names are checked before any data is read, so a typo fails at once."""
    check_model_names(config.model)
    CONTRASTIVE_LOSSES.get(config.model.loss, "model.loss")


def build_model(config, vocabulary_size):
    m = config.model
    image_encoder, text_encoder = build_encoders(m, config.data.image_size, vocabulary_size)
    backbone = CLIPBackbone(image_encoder, text_encoder, m.embedding_dim, m.projection_hidden_dim)
    return ContrastiveRetriever(backbone, m.loss, m.logit_scale_init, m.logit_scale_max, m.triplet_margin)


class Run(TrainedRun):
    """A trained model with everything needed to use it: config, text preprocessor, run directory."""

    task = TASK
    config_class = RetrievalConfig

    def __init__(self, path, model, preprocessor, config):
        super().__init__(path, model, preprocessor, config)
        self._image_embedder = self._text_embedder = None

    @property
    def image_embedder(self):
        if self._image_embedder is None:
            self._image_embedder = self.model.backbone.image_embedder()
        return self._image_embedder

    @property
    def text_embedder(self):
        if self._text_embedder is None:
            self._text_embedder = self.model.backbone.text_embedder()
        return self._text_embedder

    def embed_images(self, images):
        """uint8 or float images (n, S, S, 3) → unit embeddings (n, d)."""
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        return self.image_embedder.predict(images, batch_size=256, verbose=0)["embedding"]

    def embed_texts(self, texts):
        texts = list(texts)
        for index, text in enumerate(texts):
            if not text.strip():
                raise TfmmError(f"text #{index} is empty")
        tokens = self.preprocessor(tf.constant(texts))
        return self.text_embedder.predict(tokens, batch_size=512, verbose=0)["embedding"]

    def class_embeddings(self, class_names, templates):
        """One embedding per class: the normalised mean over prompt templates (template ensembling)."""
        if not class_names:
            raise TfmmError("the class list is empty")
        for template in templates:
            if template.count("{}") != 1:
                raise TfmmError(f"zero_shot.templates: {template!r} must contain '{{}}' exactly once")
        prompts = [t.replace("{}", name) for name in class_names for t in templates]
        embeddings = self.embed_texts(prompts).reshape(len(class_names), len(templates), -1).mean(axis=1)
        return embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)


def load_images_from_paths(paths, image_size, check):
    kept, images = [], []
    for path in paths:
        if check.keep(path):
            images.append(decode_and_resize(tf.io.read_file(str(path)), image_size).numpy())
            kept.append(str(path))
    return kept, (np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8))


def split_arrays(dataset):
    """Images, scenes, labels and (caption, scene) pairs of a whole split, in memory."""
    images, scenes, labels, captions, caption_scenes = [], [], [], [], []
    for example in dataset.as_numpy_iterator():
        images.append(example["image"])
        scene = example["scene"].decode()
        scenes.append(scene)
        labels.append(example.get("label", -1))
        for caption in example["captions"]:
            captions.append(caption.decode())
            caption_scenes.append(scene)
    if not images:
        raise TfmmError("the split is empty")
    return np.stack(images), np.array(scenes), np.array(labels), captions, np.array(caption_scenes)


# ------------------------------------------------------------------------------------------ commands


def evaluate(run, split, check):
    images, scenes, _, captions, caption_scenes = split_arrays(examples(run.config, split, check))
    metrics = recall_at_k(run.embed_images(images), run.embed_texts(captions), scenes, caption_scenes)
    metrics.update(images=len(images), captions=len(captions), split=split)
    return metrics


def zero_shot(run, split, check, class_names=None, templates=None):
    """Zero-shot accuracy on `split` (default `heldout`: colour–shape combinations never seen in training)."""
    class_names = class_names or run.config.zero_shot.class_names or list(COMBINATIONS)
    templates = templates or run.config.zero_shot.templates
    images, _, labels, _, _ = split_arrays(examples(run.config, split, check))
    if (labels < 0).any():
        raise TfmmError(f"split {split} has no class labels; zero-shot needs the shapes dataset")
    # Labels index the shapes combinations; score only images whose class is among `class_names`.
    label_names = [COMBINATIONS[label] for label in labels]
    keep = [i for i, name in enumerate(label_names) if name in class_names]
    if not keep:
        raise TfmmError(f"none of the {split} images shows one of the classes {class_names}")
    images, labels = images[keep], np.array([class_names.index(label_names[i]) for i in keep])
    class_embeddings = run.class_embeddings(class_names, templates)
    image_embeddings = run.embed_images(images)
    metrics = zero_shot_accuracy(image_embeddings, class_embeddings, labels)
    if class_names == list(COMBINATIONS):
        heldout = [COMBINATIONS.index(f"{c} {s}") for c, s in HELDOUT_COMBINATIONS]
        if split == "heldout":
            # The same images classified among the held-out combinations only.
            relabel = {old: new for new, old in enumerate(heldout)}
            subset = zero_shot_accuracy(image_embeddings, class_embeddings[heldout], [relabel[int(l)] for l in labels], ks=(1,))
            metrics["heldout_classes_only_top1_accuracy"] = subset["top1_accuracy"]
    metrics.update(images=len(images), classes=len(class_names), templates=len(templates), split=split)
    return metrics


def train(config, run_path=None):
    """Trains under the configured strategy and precision; returns the `Run` (None on non-chief workers).

    Given the `run_path` of an interrupted run, training resumes from its last backup.
    """
    session = TrainingSession(config)  # first: multi-worker needs an untouched runtime
    check_names(config)
    check = ImageCheck(strict=config.data.strict)
    run_path = Path(run_path or cli.run_dir(config.train.output_dir, TASK))
    train_examples = examples(config, "train", check)
    preprocessor = build_preprocessor(config, train_examples)

    def train_stream():  # a fresh, endless stream per fit call: batch n is the same in every run
        return pipeline(config, train_examples, preprocessor, training=True, shard=session.shard, repeat=True)

    validation_data = pipeline(config, examples(config, "validation", check), preprocessor, training=False,
                               shard=session.shard)
    chief = session.train(
        TASK, lambda: build_model(config, preprocessor.vocabulary_size), train_stream, validation_data,
        count_examples(train_examples), run_path,
        lambda path: save_vocabulary(preprocessor.vocabulary, path / "vocabulary.txt"),
    )
    if check.summary():
        print(check.summary())
    return Run.load(run_path) if chief else None


def export(run, name=None, sample_split="validation"):
    """Exports the next version; validation images and captions calibrate int8 and check TFLite parity."""
    config = run.config
    samples = examples(config, sample_split, ImageCheck(strict=config.data.strict)).take(config.export.representative_examples)
    images, _, _, captions, _ = split_arrays(samples)
    quantizations = config.export.tflite_quantization if config.export.tflite else []
    return export_retriever(
        run.model, run.preprocessor, config, to_float(images).numpy(), captions[: len(images)],
        config.export.base_dir, name or config.export.name or TASK, config.zero_shot.templates, quantizations,
    )


# ------------------------------------------------------------------------------------- index/search


def save_index(path, index):
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:  # a file object: savez adds no ".npz"
        np.savez(handle, **index)


def load_index(path):
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"index not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def empty_index(dim):
    return {"image_paths": np.array([], dtype=str), "image_mtimes": np.zeros(0), "image_embeddings": np.zeros((0, dim), np.float32),
            "captions": np.array([], dtype=str), "caption_embeddings": np.zeros((0, dim), np.float32)}


def cmd_index(args):
    run = Run.load(args.model or cli.latest_run("runs", TASK))
    check = ImageCheck(strict=args.strict)
    dim = run.model.backbone.embedding_dim
    index = load_index(args.index) if Path(args.index).is_file() else empty_index(dim)
    if index["image_embeddings"].shape[1] != dim:
        raise TfmmError(f"{args.index} holds {index['image_embeddings'].shape[1]}-d embeddings; this model makes {dim}-d")
    added_images = added_captions = 0
    if args.images:
        folder = Path(args.images)
        if not folder.is_dir():
            raise TfmmError(f"image folder not found: {folder}")
        known = dict(zip(index["image_paths"].tolist(), index["image_mtimes"].tolist()))
        candidates = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif", ".bmp"})
        new = [p for p in candidates if known.get(str(p.resolve())) != p.stat().st_mtime]
        paths, images = load_images_from_paths(new, run.model.backbone.image_size, check)
        if paths:
            resolved = [str(Path(p).resolve()) for p in paths]
            keep = ~np.isin(index["image_paths"], resolved)  # re-embedded files replace their old rows
            index["image_paths"] = np.concatenate([index["image_paths"][keep], resolved])
            index["image_mtimes"] = np.concatenate([index["image_mtimes"][keep], [Path(p).stat().st_mtime for p in paths]])
            index["image_embeddings"] = np.concatenate([index["image_embeddings"][keep], run.embed_images(images)])
        added_images = len(paths)
    if args.captions:
        path = Path(args.captions)
        if not path.is_file():
            raise TfmmError(f"caption file not found: {path}")
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        lines = [line for line in dict.fromkeys(lines) if line not in set(index["captions"].tolist())]
        if lines:
            index["captions"] = np.concatenate([index["captions"], lines])
            index["caption_embeddings"] = np.concatenate([index["caption_embeddings"], run.embed_texts(lines)])
        added_captions = len(lines)
    if not args.images and not args.captions:
        raise TfmmError("index needs --images DIR and/or --captions FILE")
    save_index(args.index, index)
    print(f"{args.index}: added {added_images} image(s) and {added_captions} caption(s); "
          f"now {len(index['image_paths'])} images, {len(index['captions'])} captions")
    if check.summary():
        print(check.summary())


def cmd_search(args):
    run = Run.load(args.model or cli.latest_run("runs", TASK))
    index = load_index(args.index)
    if bool(args.text) == bool(args.image):
        raise TfmmError("search needs exactly one of --text or --image")
    if args.top_k < 1:
        raise TfmmError(f"--top-k must be at least 1, got {args.top_k}")
    if args.text:
        if not len(index["image_paths"]):
            raise TfmmError(f"{args.index} holds no images")
        query, keys, items = run.embed_texts([args.text]), index["image_embeddings"], index["image_paths"]
    else:
        if not len(index["captions"]):
            raise TfmmError(f"{args.index} holds no captions")
        _, images = load_images_from_paths([args.image], run.model.backbone.image_size, ImageCheck(strict=True))
        query, keys, items = run.embed_images(images), index["caption_embeddings"], index["captions"]
    scores = (query @ keys.T)[0]
    order = np.argsort(-scores)[: args.top_k]
    results = [{"rank": r + 1, "score": float(scores[i]), "match": str(items[i])} for r, i in enumerate(order)]
    for result in results:
        print(f"{result['rank']:>3}  {result['score']:.4f}  {result['match']}")
    if args.output:
        cli.write_json(args.output, {"query": args.text or args.image, "results": results})


# --------------------------------------------------------------------------------------- CLI handlers


def cmd_train(args):
    config = cli.resolve_config(RetrievalConfig, args)
    run = train(config, args.run_dir)
    if run is None:  # a non-chief worker: the chief evaluates
        return
    metrics = evaluate(run, "validation", ImageCheck(strict=config.data.strict))
    cli.print_metrics("validation", metrics)


def cmd_eval(args):
    run = Run.from_args(args)
    metrics = evaluate(run, args.split, ImageCheck(strict=args.strict))
    cli.print_metrics(f"{args.split} ({run.path})", metrics)
    if args.output:
        cli.write_json(args.output, metrics)


def cmd_zero_shot(args):
    run = Run.from_args(args)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes is not None else None
    if classes is not None and not any(classes):
        raise TfmmError("--classes is empty")
    metrics = zero_shot(run, args.split, ImageCheck(strict=args.strict), classes, args.template or None)
    cli.print_metrics(f"zero-shot on {args.split} ({run.path})", metrics)
    if args.output:
        cli.write_json(args.output, metrics)


def cmd_export(args):
    run = Run.from_args(args)
    version_dir = export(run, name=args.name)
    print(f"exported {version_dir}")


def cmd_predict(args):
    run = Run.from_args(args)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else (
        run.config.zero_shot.class_names or list(COMBINATIONS))
    if not classes:
        raise TfmmError("--classes is empty")
    check = ImageCheck(strict=True)
    paths, images = load_images_from_paths(args.images, run.model.backbone.image_size, check)
    image_embeddings = run.embed_images(images)
    logits = float(run.model.head.scale()) * image_embeddings @ run.class_embeddings(classes, run.config.zero_shot.templates).T
    probabilities = tf.nn.softmax(logits).numpy()
    results = []
    for path, row in zip(paths, probabilities):
        top = np.argsort(-row)[:5]
        results.append({"image": path, "label": classes[top[0]],
                        "top5": [{"class": classes[i], "probability": float(row[i])} for i in top]})
        print(f"{path}: {classes[top[0]]}  (" + ", ".join(f"{classes[i]} {row[i]:.3f}" for i in top) + ")")
    if args.output:
        cli.write_json(args.output, {"predictions": results})


def save_presets(run, output):
    """The trained encoders as keras-hub preset directories, for other apps to start from:
    `<output>/image_encoder/` and `<output>/text_encoder/` (with its WordPiece vocabulary)."""
    import keras_hub

    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise TfmmError(f"--output {output} exists and is not empty")
    run.model.backbone.image_encoder.save_to_preset(str(output / "image_encoder"))
    run.model.backbone.text_encoder.save_to_preset(str(output / "text_encoder"))
    keras_hub.tokenizers.WordPieceTokenizer(vocabulary=run.preprocessor.vocabulary, lowercase=True, strip_accents=True,
                                            oov_token="[UNK]").save_to_preset(str(output / "text_encoder"))
    return output


def cmd_save_presets(args):
    output = save_presets(Run.from_args(args), args.output)
    print(f"wrote {output / 'image_encoder'} and {output / 'text_encoder'} "
          f"(use as model.image_encoder_weights / model.text_encoder_weights)")


def cmd_main_job(args):
    """Train the default config on shapes, evaluate, zero-shot, export: the README's first command."""
    config = cli.resolve_config(RetrievalConfig, args)
    run = train(config)
    if run is None:  # a non-chief worker: the chief evaluates and exports
        return
    check = ImageCheck(strict=config.data.strict)
    test = evaluate(run, "test", check)
    cli.print_metrics("test split", test)
    if config.data.source == "shapes":
        cli.print_metrics("zero-shot, held-out colour–shape combinations", zero_shot(run, "heldout", check))
    version_dir = export(run)
    print(f"\nexported {version_dir}")


def parser():
    app = cli.AppParser(TASK, __doc__.splitlines()[0], cmd_main_job, cmd_train)
    s = app.command("eval", cmd_eval, "Recall@1/5/10 both ways over a whole split", output=True)
    s.add_argument("--split", default="test")
    s = app.command("zero-shot", cmd_zero_shot, "zero-shot classification accuracy", output=True)
    s.add_argument("--split", default="heldout")
    s.add_argument("--classes", help="comma-separated class names (default: config or shapes combinations)")
    s.add_argument("--template", action="append", help="prompt template with {} (repeatable)")
    s = app.command("index", cmd_index, "embed a folder of images and/or a caption file into a persisted index")
    s.add_argument("--index", required=True, help="index file (.npz); created or extended")
    s.add_argument("--images", help="folder of images to add (new or changed files only)")
    s.add_argument("--captions", help="text file with one caption per line to add")
    s = app.command("search", cmd_search, "text → top-k images, or image → top-k captions", output=True)
    s.add_argument("--index", required=True)
    s.add_argument("--text")
    s.add_argument("--image")
    s.add_argument("--top-k", type=int, default=5)
    s = app.command("export", cmd_export, "SavedModel (TF Serving layout) and TFLite encoders")
    s.add_argument("--name", help="model name under saved_models/ (default: export.name or retrieval)")
    s = app.command("save-presets", cmd_save_presets, "write the trained encoders as keras-hub preset directories")
    s.add_argument("--output", required=True, help="directory to create")
    s = app.command("predict", cmd_predict, "zero-shot labels for image files", output=True)
    s.add_argument("images", nargs="+", help="image files")
    s.add_argument("--classes", help="comma-separated class names")
    return app.parser


def main(argv=None):
    return cli.main(parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
