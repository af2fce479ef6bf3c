"""Multimodal (image + text) classification: train, eval, predict, export.

`python -m tfmm.apps.classify` with no subcommand runs the main job: train the default config on
the built-in `shapes_reports` task (images with noisy text reports; the label needs both), evaluate
on the test split with both modalities and with each one removed, and export to
`saved_models/classify/<version>/`.
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
from tfmm.data import ImageAugmenter, ImageCheck, build_pipeline, to_float
from tfmm.data.images import read_image_file
from tfmm.data.labelled_pairs import RowCheck, labelled_dataset
from tfmm.data.reports import TASKS as REPORT_TASKS
from tfmm.encoders import preset_vocabulary
from tfmm.errors import TfmmError
from tfmm.export.classifier import export_classifier
from tfmm.layers import build_fusion
from tfmm.metrics import classification_metrics
from tfmm.models.multimodal_classifier import MODALITIES, MultimodalClassifier
from tfmm.text import TextPreprocessor, learn_vocabulary, save_vocabulary
from tfmm.train.session import TrainingSession, count_examples, per_worker_batch

TASK = "classify"
MISSING = ("none", "image", "text")


@dataclasses.dataclass
class ClassifyDataConfig(DataConfig):
    # "shapes_reports" (built in: shapes images + noisy reports), or a .csv/.jsonl table of image path, text and
    # label columns, or a folder with train/validation/test tables.
    source: str = "shapes_reports"
    shapes_config: str = "default"
    batch_size: int = 64
    image_column: str = "image"
    text_column: str = "text"
    # One task per column; the first is the main one. The built-in task's `shape` and `colour` (of the leftmost
    # object) are auxiliary tasks: they teach the image encoder colours and shapes (+10 points on `finding`).
    label_columns: list = dataclasses.field(default_factory=lambda: ["finding", "shape", "colour"])
    modality_dropout: float = 0.0  # training: probability of removing the image, and (separately) the text, per example


@dataclasses.dataclass
class ClassifyModelConfig:
    image_encoder: str = "cnn"
    image_encoder_size: str = "small"
    image_encoder_weights: str = ""  # local keras-hub preset directory or .weights.h5
    image_encoder_trainable: str = "full"  # full, frozen, top-N
    image_normalization: str = "batch"  # cnn: batch or group
    text_encoder: str = "transformer"
    text_encoder_size: str = "tiny"
    text_encoder_weights: str = ""
    text_encoder_trainable: str = "full"
    pretrained_learning_rate_multiplier: float = 0.1  # encoders loaded from weights train at this share of the rate
    modalities: str = "both"  # both, or image / text: a single-modality baseline
    fusion: str = "concat"  # concat, late, gated, bilinear, cross_attention, co_attention
    fusion_dim: int = 128
    fusion_heads: int = 4
    fusion_layers: int = 1
    fusion_rank: int = 4
    hidden_dim: int = 128
    dropout: float = 0.1
    loss_weighting: str = "static"  # static (loss_weights) or uncertainty (learned)
    loss_weights: list = dataclasses.field(default_factory=list)  # per label column; empty = all 1
    sequence_length: int = 40
    vocabulary_size: int = 600


@dataclasses.dataclass
class ClassifyConfig:
    data: ClassifyDataConfig = dataclasses.field(default_factory=ClassifyDataConfig)
    model: ClassifyModelConfig = dataclasses.field(default_factory=ClassifyModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=10, learning_rate=2e-3))
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)


# ---------------------------------------------------------------------------------------------- data


def check_config(config):
    """Names and label columns are checked before any data is read, so a typo fails at once."""
    m = config.model
    check_model_names(m)
    if m.modalities not in MODALITIES:
        raise TfmmError(f"model.modalities must be one of {', '.join(MODALITIES)}, got {m.modalities!r}")
    if not config.data.label_columns:
        raise TfmmError("data.label_columns is empty: name at least one label column")
    if config.data.source == "shapes_reports":
        unknown = [c for c in config.data.label_columns if c not in REPORT_TASKS]
        if unknown:
            raise TfmmError(f"data.label_columns: shapes_reports has the labels {', '.join(REPORT_TASKS)}, not {unknown}")
    if m.loss_weights and len(m.loss_weights) != len(config.data.label_columns):
        raise TfmmError(f"model.loss_weights has {len(m.loss_weights)} values for {len(config.data.label_columns)} label columns")


def examples(config, split, image_check, row_check):
    return labelled_dataset(config.data, split, image_check, row_check)


def task_classes(config, dataset):
    """Class names per task: the built-in task's fixed lists, or the sorted labels seen in training."""
    if config.data.source == "shapes_reports":
        return {task: list(REPORT_TASKS[task]) for task in config.data.label_columns}
    seen = {task: set() for task in config.data.label_columns}
    for labels in dataset.map(lambda e: e["labels"]).batch(1024).as_numpy_iterator():
        for task, values in labels.items():
            seen[task].update(v.decode() for v in values)
    return {task: sorted(values) for task, values in seen.items()}


def build_preprocessor(config, dataset):
    m = config.model
    vocabulary = preset_vocabulary(m.text_encoder_weights) if m.text_encoder_weights else None
    if vocabulary is None:
        texts = [t.decode() for batch in dataset.map(lambda e: e["text"]).batch(1024).as_numpy_iterator() for t in batch]
        vocabulary = learn_vocabulary(texts, m.vocabulary_size)
    return TextPreprocessor(vocabulary, m.sequence_length)


def pipeline(config, dataset, preprocessor, classes, training, shard=None, repeat=False, missing="none"):
    """Batches of `(inputs, labels {task: ids}, weights {task: 0/1})`; weight 0 for labels outside `classes`.

    Training with `data.modality_dropout` removes the image (black) or the text (empty) of some
    examples; `missing` removes one modality from every example, for evaluation.
    """
    data = config.data
    tables = {task: tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(names), tf.range(len(names), dtype=tf.int32)), -1) for task, names in classes.items()}
    augmenter = ImageAugmenter(data.augment, seed=config.train.seed) if training else None
    dropout = data.modality_dropout if training else 0.0

    def choose(example, seed):
        draws = tf.random.stateless_uniform([2], seed)
        return {**example, "drop_image": (draws[0] < dropout) | (missing == "image"),
                "drop_text": (draws[1] < dropout) | (missing == "text")}

    def to_batch(batch):
        images = to_float(batch["image"])
        if augmenter is not None and augmenter.active:
            images = augmenter(images)
        images = images * tf.cast(~batch["drop_image"], images.dtype)[:, None, None, None]
        text = tf.where(batch["drop_text"], tf.constant(""), batch["text"])
        ids = {task: tables[task].lookup(batch["labels"][task]) for task in classes}
        weights = {task: tf.cast(ids[task] >= 0, tf.float32) for task in classes}
        return {"images": images, **preprocessor(text)}, {t: tf.maximum(i, 0) for t, i in ids.items()}, weights

    return build_pipeline(
        dataset, per_worker_batch(data.batch_size, shard), training=training, example_fn=choose, batch_fn=to_batch,
        cache=data.cache, shuffle_buffer=data.shuffle_buffer, seed=config.train.seed, shard=shard, repeat=repeat,
    )


# --------------------------------------------------------------------------------------------- model


def build_model(config, vocabulary_size, classes):
    m = config.model
    image_encoder, text_encoder = build_encoders(m, config.data.image_size, vocabulary_size)
    fusion = None
    if m.modalities == "both":
        # `late` yields a vector here; the model keeps the task heads on it linear (see MultimodalClassifier).
        fusion = build_fusion(m.fusion, m.fusion_dim, num_outputs=m.fusion_dim, num_heads=m.fusion_heads,
                              num_layers=m.fusion_layers, rank=m.fusion_rank, dropout=m.dropout)
    weights = dict(zip(config.data.label_columns, m.loss_weights)) if m.loss_weights else None
    return MultimodalClassifier(image_encoder, text_encoder, fusion, classes, modalities=m.modalities,
                                hidden_dim=m.hidden_dim, dropout=m.dropout, loss_weighting=m.loss_weighting,
                                loss_weights=weights, name="classifier")


def pretrained_multipliers(config):
    """{variable path: factor} for encoders loaded from pretrained weights (they train more gently)."""
    m = config.model

    def multipliers(model):
        factors = {}
        for weights, encoder in ((m.image_encoder_weights, model.image_encoder), (m.text_encoder_weights, model.text_encoder)):
            if weights:
                factors.update({v.path: m.pretrained_learning_rate_multiplier for v in encoder.trainable_variables})
        return factors

    return multipliers


class Run(TrainedRun):
    """A trained classifier with its config, text preprocessor and run directory."""

    task = TASK
    config_class = ClassifyConfig

    @property
    def tasks(self):
        return self.model.tasks

    def classify(self, images, texts):
        for index, text in enumerate(texts):
            if not text.strip():
                raise TfmmError(f"text #{index} is empty")
        tokens = self.preprocessor.tokenize_numpy(texts)
        return self.forward({"images": tf.constant(images, tf.float32), **tokens})


# ------------------------------------------------------------------------------------------ commands


def train(config, run_path=None):
    """Trains under the configured strategy and precision; returns the `Run` (None on non-chief workers)."""
    session = TrainingSession(config)  # first: multi-worker needs an untouched runtime
    check_config(config)
    image_check, row_check = ImageCheck(strict=config.data.strict), RowCheck(strict=config.data.strict)
    run_path = Path(run_path or cli.run_dir(config.train.output_dir, TASK))
    train_examples = examples(config, "train", image_check, row_check)
    classes = task_classes(config, train_examples)
    preprocessor = build_preprocessor(config, train_examples)

    def train_stream():
        return pipeline(config, train_examples, preprocessor, classes, training=True, shard=session.shard, repeat=True)

    validation = pipeline(config, examples(config, "validation", image_check, row_check), preprocessor, classes,
                          training=False, shard=session.shard)

    def write_assets(path):
        save_vocabulary(preprocessor.vocabulary, path / "vocabulary.txt")

    chief = session.train(TASK, lambda: build_model(config, preprocessor.vocabulary_size, classes), train_stream,
                          validation, count_examples(train_examples), run_path, write_assets,
                          learning_rate_multipliers=pretrained_multipliers(config))
    for check in (image_check, row_check):
        if check.summary():
            print(check.summary())
    return Run.load(run_path) if chief else None


def evaluate(run, split="test", missing="none", strict=False, dataset=None):
    """Per task: accuracy, macro-F1, per-class precision/recall. Labels the model does not know are
    reported and skipped. `missing="image"` / `"text"` removes that modality from every example."""
    if missing not in MISSING:
        raise TfmmError(f"--missing must be one of {', '.join(MISSING)}, got {missing!r}")
    if dataset is None:
        dataset = examples(run.config, split, ImageCheck(strict=strict), RowCheck(strict=strict))
    batches = pipeline(run.config, dataset, run.preprocessor, run.tasks, training=False, missing=missing)
    true = {task: [] for task in run.tasks}
    predicted = {task: [] for task in run.tasks}
    unknown = {task: 0 for task in run.tasks}
    for inputs, labels, weights in batches:
        outputs = run.forward(inputs)
        for task in run.tasks:
            known = weights[task].numpy() > 0
            unknown[task] += int((~known).sum())
            true[task].extend(labels[task].numpy()[known])
            predicted[task].extend(outputs[f"{task}_probabilities"].argmax(-1)[known])
    metrics = {"split": split, "missing": missing}
    for task, names in run.tasks.items():
        if not true[task]:
            raise TfmmError(f"no example of {split} has a {task!r} label the model knows")
        scores = classification_metrics(true[task], predicted[task], names)
        metrics[task] = scores
        if unknown[task]:
            metrics[task]["skipped_unknown_labels"] = unknown[task]
            print(f"{task}: skipped {unknown[task]} example(s) whose label the model never saw in training")
    return metrics


def summary(metrics):
    """The headline numbers of `evaluate` for printing: per task accuracy and macro-F1."""
    flat = {"split": metrics["split"], "missing": metrics["missing"]}
    for task, scores in metrics.items():
        if isinstance(scores, dict):
            flat[f"{task}_accuracy"] = scores["accuracy"]
            flat[f"{task}_macro_f1"] = scores["macro_f1"]
            flat[f"{task}_examples"] = scores["examples"]
    return flat


def export(run, name=None):
    config = run.config
    samples = examples(config, "validation", ImageCheck(), RowCheck(log=lambda _: None)).take(config.export.representative_examples)
    images, texts = [], []
    for example in samples.as_numpy_iterator():
        images.append(example["image"])
        texts.append(example["text"].decode())
    quantizations = config.export.tflite_quantization if config.export.tflite else []
    return export_classifier(run.model, run.preprocessor, config, np.stack(images).astype(np.float32) / 255.0, texts,
                             config.export.base_dir, name or config.export.name or TASK, quantizations)


def load_image(path, size):
    return read_image_file(path, size)[None]


# --------------------------------------------------------------------------------------- CLI handlers


def cmd_train(args):
    config = cli.resolve_config(ClassifyConfig, args)
    run = train(config, args.run_dir)
    if run is not None:
        cli.print_metrics("validation", summary(evaluate(run, "validation")))


def cmd_eval(args):
    run = Run.from_args(args)
    metrics = evaluate(run, args.split, args.missing, strict=args.strict)
    cli.print_metrics(f"{args.split} ({run.path})", summary(metrics))
    if args.output:
        cli.write_json(args.output, metrics)


def cmd_predict(args):
    run = Run.from_args(args)
    outputs = run.classify(load_image(args.image, run.model.image_size), [args.text])
    result = {}
    for task, names in run.tasks.items():
        row = outputs[f"{task}_probabilities"][0]
        top = np.argsort(-row)[: min(5, len(names))]
        result[task] = {"label": names[top[0]], "top": [{"label": names[i], "probability": float(row[i])} for i in top]}
        print(f"{task}: {names[top[0]]}  (" + ", ".join(f"{names[i]} {row[i]:.3f}" for i in top) + ")")
    if args.output:
        cli.write_json(args.output, result)


def cmd_export(args):
    print(f"exported {export(Run.from_args(args), name=args.name)}")


def cmd_main_job(args):
    """Train the default config on shapes_reports, evaluate with and without each modality, export."""
    config = cli.resolve_config(ClassifyConfig, args)
    run = train(config)
    if run is None:
        return
    for missing in MISSING:
        cli.print_metrics(f"test split, missing: {missing}", summary(evaluate(run, "test", missing)))
    print(f"\nexported {export(run)}")


def parser():
    app = cli.AppParser(TASK, __doc__.splitlines()[0], cmd_main_job, cmd_train)
    s = app.command("eval", cmd_eval, "accuracy, macro-F1, per-class precision/recall per task", output=True)
    s.add_argument("--split", default="test")
    s.add_argument("--missing", default="none", choices=MISSING, help="evaluate with this modality removed")
    s = app.command("predict", cmd_predict, "classify an image with its text", output=True)
    s.add_argument("image")
    s.add_argument("--text", required=True)
    s = app.command("export", cmd_export, "SavedModel (TF Serving layout) and TFLite")
    s.add_argument("--name", help="model name under saved_models/ (default: export.name or classify)")
    return app.parser


def main(argv=None):
    return cli.main(parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
