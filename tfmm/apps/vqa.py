"""Visual question answering on images or video clips: train, eval, export, predict.

`python -m tfmm.apps.vqa` with no subcommand runs the main job: train the default config on
the real easy-VQA data (official train split), evaluate on its official test split with
accuracy per question type, and export to `saved_models/vqa/<version>/`.
"""

import collections
import dataclasses
from pathlib import Path

import numpy as np

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
import tensorflow as tf

from tfmm import cli
from tfmm.apps.model_parts import build_encoders, check_model_names
from tfmm.apps.run_files import TrainedRun
from tfmm.config import AugmentConfig, DataConfig, ExportConfig, TrainConfig
from tfmm.data import ImageAugmenter, ImageCheck, build_pipeline, to_float
from tfmm.data.images import decode_and_resize
from tfmm.data.question_groups import directory_groups, load_question_groups, groups_dataset
from tfmm.encoders import preset_vocabulary
from tfmm.errors import TfmmError
from tfmm.export.vqa import export_answerer
from tfmm.layers import build_fusion
from tfmm.models import VisualQuestionAnswerer
from tfmm.text import TextPreprocessor, learn_vocabulary, save_vocabulary
from tfmm.train.session import TrainingSession, count_examples, per_worker_batch

TASK = "vqa"


@dataclasses.dataclass
class VQADataConfig(DataConfig):
    # "easy_vqa" (the real dataset from the easy-vqa package: official train/test), "shapes" (the built-in
    # scenes' questions), "clips" (built-in video clips), or a directory in easy-VQA's layout
    # (images/*.png + questions.json [+ answers.txt]), or a root holding train/ and test/ such directories.
    source: str = "easy_vqa"
    batch_size: int = 32  # global batch: question groups (an image or clip with its questions), or pairs when ungrouped
    max_questions_per_image: int = 12  # images with more questions are split into balanced groups
    group_questions: bool = True  # False: one (image, question) pair per example, the image encoded per question
    validation_fraction: float = 0.1  # share of training images held out for validation (by image id)
    clips_size: str = "default"  # built-in clips: tiny, small, default
    frames: int = 6  # frames per built-in clip
    # Horizontal flips: easy-VQA's answers do not depend on left and right (turn off for data whose do;
    # the built-in clips, which ask for directions, are never augmented).
    augment: AugmentConfig = dataclasses.field(default_factory=lambda: AugmentConfig(flip=True))


@dataclasses.dataclass
class VQAModelConfig:
    image_encoder: str = "cnn"
    image_encoder_size: str = "small"
    image_encoder_weights: str = ""
    image_encoder_trainable: str = "full"
    # cnn only. Batch norm here: group norm rescales each image by its own statistics, which blurs the absolute
    # colours easy-VQA asks about (gray vs black, red vs brown); the retrieval app keeps group norm (see the cnn).
    image_normalization: str = "batch"
    text_encoder: str = "transformer"
    text_encoder_size: str = "tiny"  # easy-VQA questions are templated: a small encoder reads them, 2× faster
    text_encoder_weights: str = ""
    text_encoder_trainable: str = "full"
    # concat, late, gated, bilinear, cross_attention, co_attention. concat is the default: on easy-VQA it reaches
    # 100% test accuracy fastest (BENCHMARKS.md compares them all on one budget).
    fusion: str = "concat"
    fusion_dim: int = 128
    fusion_heads: int = 4
    fusion_layers: int = 1  # co_attention blocks
    fusion_rank: int = 4  # bilinear
    frame_heads: int = 2  # clips: frame-attention heads
    classifier_hidden_dim: int = 256
    dropout: float = 0.1
    sequence_length: int = 12  # easy-VQA questions have at most 12 word pieces with [CLS]/[SEP]; longer ones are cut
    vocabulary_size: int = 400


@dataclasses.dataclass
class VQAConfig:
    data: VQADataConfig = dataclasses.field(default_factory=VQADataConfig)
    model: VQAModelConfig = dataclasses.field(default_factory=VQAModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=20, learning_rate=2e-3))
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)


# ---------------------------------------------------------------------------------------------- data


def groups(config, split, check):
    return load_question_groups(config.data, split, check)


def training_text(dataset):
    questions, answers = [], collections.Counter()
    for group in dataset.map(lambda g: {"questions": g["questions"], "answers": g["answers"]}).as_numpy_iterator():
        questions.extend(q.decode() for q in group["questions"])
        answers.update(a.decode() for a in group["answers"])
    return questions, answers


def answer_vocabulary(answers):
    """Training answers, most frequent first (ties alphabetical)."""
    return [a for a, _ in sorted(answers.items(), key=lambda item: (-item[1], item[0]))]


def build_preprocessor(config, questions):
    vocabulary = preset_vocabulary(config.model.text_encoder_weights) if config.model.text_encoder_weights else None
    if vocabulary is None:
        if not questions:
            raise TfmmError(f"data.source {config.data.source}: the training split has no questions")
        vocabulary = learn_vocabulary(questions, config.model.vocabulary_size)
    return TextPreprocessor(vocabulary, config.model.sequence_length)


def _answer_table(vocabulary):
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int32)), -1
    )


def _to_pairs(dataset):
    """Question groups → one example per (image, question): the naive pipeline."""
    def split(group):
        count = tf.shape(group["questions"])[0]
        image = tf.broadcast_to(group["image"][None], tf.concat([[count], tf.shape(group["image"])], 0))
        return tf.data.Dataset.from_tensor_slices({
            "image": image, "image_id": tf.fill([count], group["image_id"]),
            "questions": group["questions"][:, None], "answers": group["answers"][:, None], "types": group["types"][:, None],
        })

    return dataset.flat_map(split)


def pipeline(config, dataset, preprocessor, answers, training, shard=None, repeat=False, keep_text=False):
    """Batches of `(inputs, answer ids, weights)`: inputs `images` (batch, ...) and questions
    `token_ids` / `padding_mask` (batch, questions, L); weight 0 for padding and for answers
    outside `answers`. With `keep_text`, batches are `(inputs, meta)` with the raw strings instead.
    """
    data = config.data
    grouped = data.group_questions
    width = data.max_questions_per_image if grouped else 1
    table = _answer_table(answers)
    augmenter = ImageAugmenter(data.augment, seed=config.train.seed) if training and data.source != "clips" else None

    def pad(group, seed):
        del seed
        count = tf.shape(group["questions"])[0]
        padding = width - count

        def padded(values, fill):
            return tf.reshape(tf.concat([values, tf.fill([padding], fill)], 0), [width])

        return {"image": group["image"], "image_id": group["image_id"], "questions": padded(group["questions"], ""),
                "answers": padded(group["answers"], ""), "types": padded(group["types"], ""),
                "real": tf.reshape(tf.concat([tf.ones([count], tf.bool), tf.zeros([padding], tf.bool)], 0), [width])}

    def to_batch(batch):
        images = to_float(batch["image"])
        if augmenter is not None and augmenter.active:
            images = augmenter(images)
        questions = batch["questions"]
        tokens = preprocessor(tf.reshape(questions, [-1]))
        shape = tf.shape(questions)
        inputs = {"images": images, **{k: tf.reshape(v, [shape[0], shape[1], -1]) for k, v in tokens.items()}}
        answer_ids = table.lookup(batch["answers"])
        if keep_text:
            return inputs, {"answers": batch["answers"], "types": batch["types"], "questions": questions,
                            "real": batch["real"], "image_id": batch["image_id"]}
        weights = tf.cast(batch["real"] & (answer_ids >= 0), tf.float32)
        return inputs, tf.maximum(answer_ids, 0), weights

    cache = data.cache
    if not grouped:
        dataset = _to_pairs(dataset.cache() if cache else dataset)
        cache = False
    return build_pipeline(
        dataset, per_worker_batch(data.batch_size, shard), training=training, example_fn=pad, batch_fn=to_batch, cache=cache,
        shuffle_buffer=data.shuffle_buffer, seed=config.train.seed, shard=shard, repeat=repeat,
        drop_remainder=training,
    )


# --------------------------------------------------------------------------------------------- model


def build_model(config, vocabulary_size, answers):
    m = config.model
    image_encoder, text_encoder = build_encoders(m, config.data.image_size, vocabulary_size)
    fusion = build_fusion(m.fusion, m.fusion_dim, num_outputs=len(answers), num_heads=m.fusion_heads,
                          num_layers=m.fusion_layers, rank=m.fusion_rank, dropout=m.dropout)
    frames = config.data.frames if config.data.source == "clips" else 0
    return VisualQuestionAnswerer(image_encoder, text_encoder, fusion, answers, frames=frames, frame_heads=m.frame_heads,
                                  classifier_hidden_dim=m.classifier_hidden_dim, dropout=m.dropout, name="vqa")


class Run(TrainedRun):
    """A trained VQA model with its config, question preprocessor and run directory."""

    task = TASK
    config_class = VQAConfig

    @property
    def answers(self):
        return self.model.answer_vocabulary

    def known_words(self, question):
        """How many of the question's word pieces the vocabulary knows (0: the model cannot read it)."""
        unknown = self.preprocessor.vocabulary.index("[UNK]")
        special = {self.preprocessor.pad_id, self.preprocessor.start_id, self.preprocessor.end_id}
        ids = self.preprocessor.tokenize_numpy([question])["token_ids"][0]
        return sum(1 for i in ids if i not in special and i != unknown)

    def ask(self, images, questions):
        """One question per image: float images (n, ...) and n strings → the model's outputs per question."""
        for index, question in enumerate(questions):
            if not question.strip():
                raise TfmmError(f"question #{index} is empty")
            if self.known_words(question) == 0:
                raise TfmmError(f"question #{index} {question!r} has no word the model knows")
        tokens = self.preprocessor.tokenize_numpy(questions)
        outputs = self.forward({"images": tf.constant(images, tf.float32), "token_ids": tokens["token_ids"][:, None],
                                "padding_mask": tokens["padding_mask"][:, None]})
        return {k: v[:, 0] for k, v in outputs.items()}


# ------------------------------------------------------------------------------------------ commands


def train(config, run_path=None):
    """Trains under the configured strategy and precision; returns the `Run` (None on non-chief workers)."""
    session = TrainingSession(config)  # first: multi-worker needs an untouched runtime
    check_model_names(config.model)
    check = ImageCheck(strict=config.data.strict)
    run_path = Path(run_path or cli.run_dir(config.train.output_dir, TASK))
    train_groups = groups(config, "train", check)
    questions, answer_counts = training_text(train_groups)
    preprocessor = build_preprocessor(config, questions)
    answers = answer_vocabulary(answer_counts)

    def train_stream():
        return pipeline(config, train_groups, preprocessor, answers, training=True, shard=session.shard, repeat=True)

    validation = None
    if config.data.validation_fraction > 0 or config.data.source in ("shapes", "clips"):
        validation = pipeline(config, groups(config, "validation", check), preprocessor, answers, training=False,
                              shard=session.shard)
    examples = count_examples(train_groups) if config.data.group_questions else len(questions)

    def write_assets(path):
        save_vocabulary(preprocessor.vocabulary, path / "vocabulary.txt")
        (path / "answers.txt").write_text("\n".join(answers) + "\n", encoding="utf-8")

    chief = session.train(TASK, lambda: build_model(config, preprocessor.vocabulary_size, answers), train_stream,
                          validation, examples, run_path, write_assets)
    if check.summary():
        print(check.summary())
    return Run.load(run_path) if chief else None


def evaluate(run, dataset):
    """Accuracy over every question of `dataset` (question groups), per question type, and the most
    frequent confusions. Answers outside the model's vocabulary are reported and skipped."""
    config = dataclasses.replace(run.config, data=dataclasses.replace(run.config.data, group_questions=True))
    batches = pipeline(config, dataset, run.preprocessor, run.answers, training=False, keep_text=True)
    known = set(run.answers)
    totals, correct = collections.Counter(), collections.Counter()
    confusions, unknown_answers = collections.Counter(), collections.Counter()
    unreadable = 0
    for inputs, meta in batches:
        predicted = run.forward(inputs)["probabilities"].argmax(-1)
        real = meta["real"].numpy()
        for (i, j) in zip(*np.nonzero(real)):
            truth, kind = meta["answers"][i, j].numpy().decode(), meta["types"][i, j].numpy().decode()
            if truth not in known:
                unknown_answers[truth] += 1
                continue
            guess = run.answers[predicted[i, j]]
            totals[kind] += 1
            correct[kind] += guess == truth
            if guess != truth:
                confusions[f"{truth} → {guess}"] += 1
            if run.known_words(meta["questions"][i, j].numpy().decode()) == 0:
                unreadable += 1
    count = sum(totals.values())
    if count == 0:
        raise TfmmError("no question to evaluate: every answer is outside the model's answer vocabulary"
                        if unknown_answers else "no question to evaluate")
    metrics = {"accuracy": sum(correct.values()) / count, "questions": count}
    for kind in sorted(totals):
        metrics[f"accuracy_{kind.replace('/', '_')}"] = correct[kind] / totals[kind]
        metrics[f"questions_{kind.replace('/', '_')}"] = totals[kind]
    metrics["errors"] = count - sum(correct.values())
    metrics["top_confusions"] = ", ".join(f"{pair} ×{n}" for pair, n in confusions.most_common(5)) or "none"
    if unknown_answers:
        metrics["skipped_unknown_answers"] = sum(unknown_answers.values())
        print(f"skipped {sum(unknown_answers.values())} question(s) whose answer the model does not know: "
              + ", ".join(f"{a!r} ×{n}" for a, n in unknown_answers.most_common(5)))
    if unreadable:
        metrics["questions_without_known_words"] = unreadable
    return metrics


def eval_groups(run, split=None, directory=None, check=None):
    check = check or ImageCheck(strict=run.config.data.strict)
    if directory:
        found, answers = directory_groups(directory, check)
        if answers is not None:
            outside = sorted(set(answers) - set(run.answers))
            if outside:
                print(f"{directory}/answers.txt lists answers the model never learnt: {', '.join(outside)}")
        size = run.model.image_size
        return groups_dataset(found, run.config.data.max_questions_per_image,
                        lambda path: decode_and_resize(tf.io.read_file(path), size))
    return groups(run.config, split, check)


def load_media(paths, run):
    """An image file, or for clip models the frame files of one clip, as float (1, ...)."""
    check = ImageCheck(strict=True)
    for path in paths:
        check.keep(path)
    size = run.model.image_size
    frames = [decode_and_resize(tf.io.read_file(str(p)), size).numpy() for p in paths]
    if run.model.frames:
        if len(frames) != run.model.frames:
            raise TfmmError(f"this clip model takes {run.model.frames} frame files, got {len(frames)}")
        return np.stack(frames)[None].astype(np.float32) / 255.0
    if len(frames) != 1:
        raise TfmmError(f"this image model takes one image file, got {len(frames)}")
    return frames[0][None].astype(np.float32) / 255.0


def plot_attention(run, media, question, outputs, path):
    """The question's attention over the image (mean over heads and the question's tokens), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "attention" not in outputs:
        raise TfmmError(f"fusion {run.config.model.fusion!r} has no attention over the image to plot; "
                        "use cross_attention or co_attention")
    mask = run.preprocessor.tokenize_numpy([question])["padding_mask"][0].astype(bool)
    weights = outputs["attention"][0][:, mask].mean(axis=(0, 1))  # (regions,) or (frame heads · regions,)
    panels = weights.reshape(run.model.frame_heads if run.model.frames else 1, -1)  # a region grid per frame head
    side = int(round(panels.shape[1] ** 0.5))
    images = [media[0]] if not run.model.frames else [media[0][f] for f in outputs["frame_attention"][0].argmax(-1)]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.4), squeeze=False)
    for axis, image, panel in zip(axes[0], images, panels):
        axis.imshow(image)
        axis.imshow(panel.reshape(side, side), cmap="inferno", alpha=0.55, extent=(0, image.shape[1], image.shape[0], 0),
                    interpolation="bilinear")
        axis.axis("off")
    answer = run.answers[int(outputs["probabilities"][0].argmax())]
    figure.suptitle(f"{question} → {answer}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def export(run, name=None, sample_split="validation"):
    """Exports the next version; sample questions calibrate int8 and check TFLite parity."""
    config = run.config
    sample_split = sample_split if config.data.validation_fraction > 0 or config.data.source in ("shapes", "clips") else "test"
    images, questions = [], []
    for group in groups(config, sample_split, ImageCheck(strict=config.data.strict)).as_numpy_iterator():
        for question in group["questions"][:2]:
            images.append(group["image"])
            questions.append(question.decode())
        if len(images) >= config.export.representative_examples:
            break
    quantizations = config.export.tflite_quantization if config.export.tflite else []
    return export_answerer(run.model, run.preprocessor, config, np.stack(images).astype(np.float32) / 255.0, questions,
                           config.export.base_dir, name or config.export.name or TASK, quantizations)


# --------------------------------------------------------------------------------------- CLI handlers


def cmd_train(args):
    config = cli.resolve_config(VQAConfig, args)
    run = train(config, args.run_dir)
    if run is None:
        return
    split = "validation" if config.data.validation_fraction > 0 or config.data.source in ("shapes", "clips") else "test"
    cli.print_metrics(split, evaluate(run, groups(config, split, ImageCheck(strict=config.data.strict))))


def cmd_eval(args):
    run = Run.from_args(args)
    metrics = evaluate(run, eval_groups(run, args.split, args.data, ImageCheck(strict=args.strict)))
    cli.print_metrics(f"{args.data or args.split} ({run.path})", metrics)
    if args.output:
        cli.write_json(args.output, metrics)


def cmd_export(args):
    run = Run.from_args(args)
    print(f"exported {export(run, name=args.name)}")


def cmd_predict(args):
    run = Run.from_args(args)
    media = load_media(args.media, run)
    outputs = run.ask(media, [args.question])
    row = outputs["probabilities"][0]
    top = np.argsort(-row)[:5]
    result = {"question": args.question, "answer": run.answers[top[0]],
              "top5": [{"answer": run.answers[i], "probability": float(row[i])} for i in top]}
    print(f"{args.question} → {result['answer']}  (" + ", ".join(f"{run.answers[i]} {row[i]:.3f}" for i in top) + ")")
    if args.plot:
        plot_attention(run, media, args.question, outputs, args.plot)
        print(f"wrote {args.plot}")
    if args.output:
        cli.write_json(args.output, result)


def cmd_main_job(args):
    """Train the default config on easy-VQA, evaluate on its official test split, export."""
    config = cli.resolve_config(VQAConfig, args)
    run = train(config)
    if run is None:
        return
    cli.print_metrics("test split", evaluate(run, groups(config, "test", ImageCheck(strict=config.data.strict))))
    print(f"\nexported {export(run)}")


def parser():
    app = cli.AppParser(TASK, __doc__.splitlines()[0], cmd_main_job, cmd_train)
    s = app.command("eval", cmd_eval, "accuracy overall and per question type", output=True)
    s.add_argument("--split", default="test")
    s.add_argument("--data", help="a directory in easy-VQA layout to evaluate on instead of a split")
    app.command("export", cmd_export, "SavedModel (TF Serving layout) and TFLite").add_argument(
        "--name", help="model name under saved_models/ (default: export.name or vqa)")
    s = app.command("predict", cmd_predict, "answer a question about an image (or a clip's frame files)", output=True)
    s.add_argument("media", nargs="+", help="an image file, or the frame files of one clip")
    s.add_argument("--question", required=True)
    s.add_argument("--plot", help="write a PNG of the question's attention over the image")
    return app.parser


def main(argv=None):
    return cli.main(parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
