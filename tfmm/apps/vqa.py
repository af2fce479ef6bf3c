"""Visual question answering on images or video clips: train, eval, export, predict.

`python -m tfmm.apps.vqa` with no subcommand runs the main job: train the default config on
the real easy-VQA data (official train split), evaluate on its official test split with
accuracy per question type, and export to `saved_models/vqa/<version>/`.
"""

import collections
import dataclasses

import numpy as np
import tensorflow as tf

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
from tfmm.apps.model_parts import build_fusion_backbone, build_tokenizer, image_converter
from tfmm.apps.runner import MIXING_REFUSED, App, Runner
from tfmm.config import DataConfig, ImageAugmentConfig, TrainConfig, app_config, between, one_of, positive, variant
from tfmm.data import DataChecks, ImageAugmenter, build_pipeline, read_image_files
from tfmm.data.images import decode_and_resize
from tfmm.data.question_groups import directory_groups, groups_dataset, load_question_groups, pad_group
from tfmm.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
from tfmm.errors import TfmmError
from tfmm.evaluation import evaluate_vqa
from tfmm.export.vqa import export_answerer
from tfmm.layers import FUSIONS
from tfmm.models import VisualQuestionAnswerer, VisualQuestionAnswererPreprocessor
from tfmm.train.session import per_worker_batch
from tfmm.visualization import plot_attention


@dataclasses.dataclass
class VQADataConfig(DataConfig):
    # "easy_vqa" (the real dataset from the easy-vqa package: official train/test), "shapes" (the built-in
    # scenes' questions), "clips" (built-in video clips), or a directory in easy-VQA's layout
    # (images/*.png + questions.json [+ answers.txt]), or a root holding train/ and test/ such directories.
    source: str = "easy_vqa"
    batch_size: int = positive(32)  # question groups (an image or clip with its questions), or pairs when ungrouped
    max_questions_per_image: int = positive(12)  # images with more questions are split into balanced groups
    group_questions: bool = True  # False: one (image, question) pair per example, the image encoded per question
    clips_size: str = one_of(("tiny", "small", "default"), "default")  # source = "clips"
    frames: int = positive(6)  # source = "clips": frames per clip
    # Horizontal flips: easy-VQA's answers do not depend on left and right (turn off for data whose do;
    # the built-in clips, which ask for directions, are never augmented).
    augment: ImageAugmentConfig = dataclasses.field(default_factory=lambda: ImageAugmentConfig(flip=True))


@dataclasses.dataclass
class VQAModelConfig:
    # Batch norm in the cnn: group norm rescales each image by its own statistics, which blurs the absolute
    # colours easy-VQA asks about (gray vs black, red vs brown).
    image_encoder: object = variant(IMAGE_ENCODERS, "cnn", size="small", normalization="batch")
    # easy-VQA questions are templated: a tiny encoder reads them, 2× faster than small.
    text_encoder: object = variant(TEXT_ENCODERS, "transformer", size="tiny")
    # concat reaches 100% on easy-VQA fastest; BENCHMARKS.md compares every fusion on one budget.
    fusion: object = variant(FUSIONS, "concat", hidden_dim=128)
    frame_heads: int = positive(2)  # clips: frame-attention heads
    classifier_hidden_dim: int = positive(256)
    dropout: float = between(0, 1, 0.1)
    sequence_length: int = positive(12)  # easy-VQA questions have at most 12 word pieces with [CLS]/[SEP]
    vocabulary_size: int = positive(400)


VQAConfig = app_config("VQAConfig", VQADataConfig, VQAModelConfig, TrainConfig(epochs=20, learning_rate=2e-3, xla_fusion="auto"))


def _to_pairs(dataset):
    """Question groups → one group per (image, question): the naive pipeline, for comparison."""
    def split(group):
        count = tf.shape(group["questions"])[0]
        image = tf.broadcast_to(group["image"][None], tf.concat([[count], tf.shape(group["image"])], 0))
        return tf.data.Dataset.from_tensor_slices({
            "image": image, "image_id": tf.fill([count], group["image_id"]), "questions": group["questions"][:, None],
            "answers": group["answers"][:, None], "types": group["types"][:, None]})

    return dataset.flat_map(split)


class VQA(App):
    name, description = "vqa", __doc__.splitlines()[0]
    source = load_question_groups
    config_class, task_class = VQAConfig, VisualQuestionAnswerer
    cannot_honour = {"data.text_augment": "a question's words say what is asked; data.augment works on the images",
                     "data.augment.mixup": MIXING_REFUSED, "data.augment.cutmix": MIXING_REFUSED}

    def build_preprocessor(self, config, train_examples):
        questions, answers = [], collections.Counter()
        for group in train_examples.map(lambda g: {"q": g["questions"], "a": g["answers"]}).as_numpy_iterator():
            questions.extend(q.decode() for q in group["q"])
            answers.update(a.decode() for a in group["a"])
        tokenizer = build_tokenizer(config.model, lambda: questions, config.data.source)
        vocabulary = [a for a, _ in sorted(answers.items(), key=lambda item: (-item[1], item[0]))]  # most frequent first
        return VisualQuestionAnswererPreprocessor(tokenizer, image_converter(config), config.model.sequence_length, vocabulary)

    def build_task(self, config, preprocessor):
        m, frames = config.model, config.data.frames if config.data.source == "clips" else 0
        backbone = build_fusion_backbone(config, preprocessor.vocabulary_size, len(preprocessor.answer_vocabulary),
                                         question_groups=True, frames=frames, frame_heads=m.frame_heads)
        return VisualQuestionAnswerer(backbone, preprocessor, classifier_hidden_dim=m.classifier_hidden_dim,
                                      dropout=m.dropout, name="vqa")

    def pipeline(self, config, examples, training, shard=None, repeat=False):
        """Batches of raw `({"images", "questions"}, answers, real)`, questions (batch, questions)."""
        data = config.data
        width = data.max_questions_per_image if data.group_questions else 1
        augmenter = ImageAugmenter(data.augment) if training and data.source != "clips" else None

        def to_batch(batch, seed):
            images = augmenter(batch["image"], seed) if augmenter else batch["image"]
            return {"images": images, "questions": batch["questions"]}, batch["answers"], tf.cast(batch["real"], tf.float32)

        cache = data.cache
        if not data.group_questions:
            examples, cache = _to_pairs(examples.cache() if cache else examples), False
        return build_pipeline(examples, per_worker_batch(data.batch_size, shard), training=training,
                              example_fn=lambda group, seed: pad_group(group, width), batch_fn=to_batch, cache=cache,
                              shuffle_buffer=data.shuffle_buffer, seed=config.train.seed, shard=shard, repeat=repeat)

    def example_count(self, config, train_examples):
        if config.data.group_questions:
            return super().example_count(config, train_examples)
        return sum(int(g.shape[0]) for g in train_examples.map(lambda g: g["questions"]).as_numpy_iterator())

    def has_validation(self, config):
        return config.data.validation_fraction > 0 or config.data.source in ("shapes", "clips")

    def evaluate(self, task, config, split, args=None):
        checks = DataChecks(strict=config.data.strict)
        directory = getattr(args, "data", None)
        if directory:
            found, answers = directory_groups(directory, checks.images)
            outside = sorted(set(answers or ()) - set(task.answer_vocabulary))
            if outside:
                print(f"{directory}/answers.txt lists answers the model never learnt: {', '.join(outside)}")
            size = config.data.image_size
            groups = groups_dataset(found, config.data.max_questions_per_image,
                                    lambda path: decode_and_resize(tf.io.read_file(path), size))
        else:
            groups = self.load_split(config, split, checks)
        return evaluate_vqa(task, groups, config.data.max_questions_per_image)

    def export_samples(self, config, checks):
        split = "validation" if self.has_validation(config) else "test"
        images, questions = [], []
        for group in self.load_split(config, split, checks).as_numpy_iterator():
            for question in group["questions"][:2]:
                images.append(group["image"])
                questions.append(question.decode())
            if len(images) >= config.export.representative_examples:
                break
        return {"images": np.stack(images), "questions": questions}

    def export(self, task, config, samples, base_dir, name, quantizations):
        return export_answerer(task, config, samples, base_dir, name, quantizations)

    def main_pictures(self, task, config, folder):
        group = next(self.load_split(config, "test", DataChecks(strict=config.data.strict)).as_numpy_iterator())
        media, question = group["image"][None], group["questions"][0].decode()
        outputs = task.answer_details(media, [question])
        if "attention" not in outputs:  # a fusion without attention over the image
            return []
        answer = task.answer_vocabulary[int(outputs["probabilities"][0].argmax())]
        return [self.plot(task, media, question, outputs, answer, folder / "attention.png")]

    def predict(self, task, config, args):
        frames = task.backbone.frames
        if len(args.media) != (frames or 1):
            raise TfmmError(f"this {'clip' if frames else 'image'} model takes {frames or 1} image file(s), got {len(args.media)}")
        encoded = read_image_files(args.media)
        media = [encoded[0]] if not frames else [encoded]
        outputs = task.answer_details(media, [args.question])
        row, answers = outputs["probabilities"][0], task.answer_vocabulary
        top = np.argsort(-row)[:5]
        result = {"question": args.question, "answer": answers[top[0]],
                  "top5": [{"answer": answers[i], "probability": float(row[i])} for i in top]}
        print(f"{args.question} → {result['answer']}  (" + ", ".join(f"{answers[i]} {row[i]:.3f}" for i in top) + ")")
        if args.plot:
            self.plot(task, media, args.question, outputs, result["answer"], args.plot)
            print(f"wrote {args.plot}")
        return result

    @staticmethod
    def plot(task, media, question, outputs, answer, path):
        """The question's attention over the image (mean over heads and the question's tokens); for clips,
        one panel per frame head, on the frame that head looked at most."""
        if "attention" not in outputs:
            raise TfmmError(f"this model's fusion ({type(task.backbone.fusion).__name__}) has no attention over the image to plot; "
                            "use cross_attention or co_attention")
        mask = task.preprocessor.tokenize_numpy([question])["padding_mask"][0].astype(bool)
        weights = outputs["attention"][0][:, mask].mean(axis=(0, 1))  # (regions,) or (frame heads · regions,)
        frames = task.backbone.frames
        pixels = task.preprocessor.image_converter.pixels(tf.constant(media)).numpy()[0]
        images = [pixels] if not frames else [pixels[f] for f in outputs["frame_attention"][0].argmax(-1)]
        return plot_attention(images, weights.reshape(len(images), -1), f"{question} → {answer}", path)

    def add_eval_arguments(self, parser):
        super().add_eval_arguments(parser)
        parser.add_argument("--data", help="a directory in easy-VQA layout to evaluate on instead of a split")

    def add_predict_arguments(self, parser):
        parser.add_argument("media", nargs="+", help="an image file, or the frame files of one clip")
        parser.add_argument("--question", required=True)
        parser.add_argument("--plot", help="write a PNG of the question's attention over the image")


def main(argv=None):
    return Runner(VQA()).main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
