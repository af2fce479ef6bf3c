"""Multimodal (image + text) classification: train, eval, predict, export.

`python -m tfmm.apps.classify` with no subcommand runs the main job: train the default config on
the built-in `shapes_reports` task (images with noisy text reports; the label needs both), evaluate
on the test split with both modalities and with each one removed, and export to
`saved_models/classify/<version>/`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
from tfmm.apps.model_parts import build_fusion_backbone, build_tokenizer, image_converter, pretrained_multipliers
from tfmm.apps.runner import App, Runner
from tfmm.config import DataConfig, ImageAugmentConfig, TrainConfig, app_config, between, one_of, positive, variant
from tfmm.data import DataChecks, ImageAugmenter, build_pipeline, read_image_files
from tfmm.data.labelled_pairs import labelled_dataset
from tfmm.data.mixing import MIX_PARTNER, MIX_WEIGHT, mix_images
from tfmm.data.reports import TASKS as REPORT_TASKS
from tfmm.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
from tfmm.errors import TfmmError
from tfmm.evaluation import evaluate_classifier, summarize_classification
from tfmm.evaluation.classification import MISSING
from tfmm.export.classifier import export_classifier
from tfmm.layers import FUSIONS
from tfmm.models import MultimodalClassifier, MultimodalClassifierPreprocessor
from tfmm.models.multimodal_classifier import LOSS_WEIGHTINGS
from tfmm.train.session import per_worker_batch
from tfmm.visualization import plot_probabilities


@dataclasses.dataclass
class ClassifyDataConfig(DataConfig):
    # "shapes_reports" (built in: shapes images + noisy reports), or a .csv/.jsonl table of image path, text and
    # label columns, or a folder with train/validation/test tables.
    source: str = "shapes_reports"
    batch_size: int = positive(64)
    image_column: str = "image"
    text_column: str = "text"
    # One task per column; the first is the main one. The built-in task's `shape` and `colour` (of the leftmost
    # object) are auxiliary tasks: they teach the image encoder colours and shapes (+10 points on `finding`).
    label_columns: list = dataclasses.field(default_factory=lambda: ["finding", "shape", "colour"])
    modality_dropout: float = between(0, 1, 0.0)  # training: probability of removing the image, and (separately) the text
    augment: ImageAugmentConfig = dataclasses.field(default_factory=ImageAugmentConfig)

    def validate(self, root):
        if not self.label_columns:
            raise TfmmError("data.label_columns is empty: name at least one label column")
        unknown = [c for c in self.label_columns if c not in REPORT_TASKS]
        if self.source == "shapes_reports" and unknown:
            raise TfmmError(f"data.label_columns: shapes_reports has the labels {', '.join(REPORT_TASKS)}, not {unknown}")


@dataclasses.dataclass
class ClassifyModelConfig:
    image_encoder: object = variant(IMAGE_ENCODERS, "cnn", size="small", normalization="batch")
    text_encoder: object = variant(TEXT_ENCODERS, "transformer", size="tiny")
    pretrained_learning_rate_multiplier: float = positive(0.1)  # encoders loaded from weights train at this share
    # concat, late, gated, bilinear, cross_attention, co_attention, or a single-modality baseline on the same
    # encoders: image_only, text_only
    fusion: object = variant(FUSIONS, "concat", hidden_dim=128)
    hidden_dim: int = positive(128)  # each task's head
    dropout: float = between(0, 1, 0.1)
    loss_weighting: str = one_of(LOSS_WEIGHTINGS, "static")  # static (loss_weights) or uncertainty (learned)
    loss_weights: list = dataclasses.field(default_factory=list)  # per label column; empty = all 1
    sequence_length: int = positive(40)
    vocabulary_size: int = positive(600)

    def validate(self, root):
        columns = root.data.label_columns
        if self.loss_weights and len(self.loss_weights) != len(columns):
            raise TfmmError(f"model.loss_weights has {len(self.loss_weights)} values for {len(columns)} label columns")
        if self.loss_weights and self.loss_weighting == "uncertainty":
            raise TfmmError("model.loss_weights are static weights; model.loss_weighting 'uncertainty' learns them")


ClassifyConfig = app_config("ClassifyConfig", ClassifyDataConfig, ClassifyModelConfig,
                            TrainConfig(epochs=10, learning_rate=2e-3, xla_fusion="auto"))


class Classify(App):
    name, description = "classify", __doc__.splitlines()[0]
    config_class, task_class = ClassifyConfig, MultimodalClassifier
    cannot_honour = {"data.text_augment": "the report words carry the labels; data.augment works on the images"}

    def load_split(self, config, split, checks):
        return labelled_dataset(config.data, split, checks.images, checks.rows)

    def task_classes(self, config, dataset):
        """Class names per task: the built-in task's fixed lists, or the sorted labels seen in training."""
        if config.data.source == "shapes_reports":
            return {task: list(REPORT_TASKS[task]) for task in config.data.label_columns}
        seen = {task: set() for task in config.data.label_columns}
        for labels in dataset.map(lambda e: e["labels"]).batch(1024).as_numpy_iterator():
            for task, values in labels.items():
                seen[task].update(v.decode() for v in values)
        return {task: sorted(values) for task, values in seen.items()}

    def build_preprocessor(self, config, train_examples):
        texts = lambda: [t.decode() for b in train_examples.map(lambda e: e["text"]).batch(1024).as_numpy_iterator()  # noqa: E731
                         for t in b]
        tokenizer = build_tokenizer(config.model, texts, config.data.source)
        return MultimodalClassifierPreprocessor(tokenizer, image_converter(config), config.model.sequence_length,
                                                self.task_classes(config, train_examples))

    def build_task(self, config, preprocessor):
        m = config.model
        backbone = build_fusion_backbone(config, preprocessor.vocabulary_size, m.fusion.hidden_dim)
        weights = dict(zip(config.data.label_columns, m.loss_weights)) if m.loss_weights else None
        return MultimodalClassifier(backbone, preprocessor, hidden_dim=m.hidden_dim, dropout=m.dropout,
                                    loss_weighting=m.loss_weighting, loss_weights=weights, name="classifier")

    def learning_rate_multipliers(self, config):
        return pretrained_multipliers(config.model)

    def pipeline(self, config, examples, training, shard=None, repeat=False):
        """Batches of raw `({"images", "text"}, {task: label})`. Training with `data.modality_dropout` removes
        the image (black) or the text (empty) of some examples."""
        data = config.data
        augmenter = ImageAugmenter(data.augment) if training else None
        dropout = data.modality_dropout if training else 0.0

        def choose(example, seed):
            draws = tf.random.stateless_uniform([2], seed)
            image = tf.where(draws[0] < dropout, tf.zeros_like(example["image"]), example["image"])
            return {"image": image, "text": tf.where(draws[1] < dropout, "", example["text"]), "labels": example["labels"]}

        mixing = training and (data.augment.mixup or data.augment.cutmix)

        def to_batch(batch, seed):
            images, labels = augmenter(batch["image"], seed) if augmenter else batch["image"], batch["labels"]
            if mixing:
                images, partner, weight = mix_images(images, tf.random.experimental.stateless_fold_in(seed, 1),
                                                     data.augment.mixup, data.augment.cutmix)
                labels = {**labels, MIX_PARTNER: {t: tf.gather(v, partner) for t, v in labels.items()}, MIX_WEIGHT: weight}
            return {"images": images, "text": batch["text"]}, labels

        return build_pipeline(examples, per_worker_batch(data.batch_size, shard), training=training, example_fn=choose,
                              batch_fn=to_batch, cache=data.cache, shuffle_buffer=data.shuffle_buffer,
                              seed=config.train.seed, shard=shard, repeat=repeat)

    def evaluate(self, task, config, split, args=None, missing=None):
        missing = missing or getattr(args, "missing", "none")
        checks = DataChecks(strict=config.data.strict)
        metrics = evaluate_classifier(task, self.load_split(config, split, checks), missing)
        return {"split": split, **metrics}

    def report(self, title, metrics):
        super().report(f"{title}, missing: {metrics['missing']}", summarize_classification(metrics))

    def main_report(self, runner, task, config):
        for missing in MISSING:
            self.report("test split", self.evaluate(task, config, "test", missing=missing))

    def export_samples(self, config, checks):
        examples = list(self.load_split(config, "validation", checks).take(config.export.representative_examples)
                        .as_numpy_iterator())
        return {"images": np.stack([e["image"] for e in examples]), "texts": [e["text"].decode() for e in examples]}

    def export(self, task, config, samples, base_dir, name, quantizations):
        return export_classifier(task, config, samples, base_dir, name, quantizations)

    def main_pictures(self, task, config, folder):
        example = next(self.load_split(config, "test", DataChecks(strict=config.data.strict)).as_numpy_iterator())
        return [self.plot(task, example["image"], example["text"].decode(), folder / "classify.png")]

    @staticmethod
    def plot(task, image, text, path):
        """The image, and each task's class probabilities for (image, text) as bars."""
        probabilities = task.classify_details(np.asarray(image)[None], [text])
        groups = {name: (classes, probabilities[f"{name}_probabilities"][0]) for name, classes in task.tasks.items()}
        return plot_probabilities(groups, text if len(text) < 90 else text[:87] + "…", path, image=image)

    def predict(self, task, config, args):
        encoded = read_image_files([args.image])
        probabilities = task.classify_details(encoded, [args.text])
        result = {}
        for name, classes in task.tasks.items():
            row = probabilities[f"{name}_probabilities"][0]
            top = np.argsort(-row)[: min(5, len(classes))]
            result[name] = {"label": classes[top[0]], "top": [{"label": classes[i], "probability": float(row[i])} for i in top]}
            print(f"{name}: {classes[top[0]]}  (" + ", ".join(f"{classes[i]} {row[i]:.3f}" for i in top) + ")")
        if args.plot:
            pixels = task.preprocessor.image_converter.pixels(tf.constant(encoded)).numpy()[0]
            print(f"wrote {self.plot(task, pixels, args.text, args.plot)}")
        return result

    def add_eval_arguments(self, parser):
        super().add_eval_arguments(parser)
        parser.add_argument("--missing", default="none", choices=MISSING, help="evaluate with this modality removed")

    def add_predict_arguments(self, parser):
        parser.add_argument("image")
        parser.add_argument("--text", required=True)
        parser.add_argument("--plot", help="write a PNG of the image with each task's class probabilities")


def main(argv=None):
    return Runner(Classify()).main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
