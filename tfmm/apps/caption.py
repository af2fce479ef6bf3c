"""Image captioning: train, eval (COCO metrics + object check), predict with attention maps, export.

`python -m tfmm.apps.caption` with no subcommand runs the main job: train the default config on
the built-in `shapes` captions, evaluate greedy and beam-search captions on the test split, and
export to `saved_models/caption/<version>/` (a SavedModel that captions image bytes, and TFLite).
"""

import dataclasses

import numpy as np
import tensorflow as tf

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
from tfmm.apps.model_parts import build_tokenizer, image_converter
from tfmm.apps.runner import MIXING_REFUSED, App, Runner
from tfmm.cli import SAMPLING_FLAGS, add_shortcut_arguments
from tfmm.config import (
    DataConfig,
    ExportConfig,
    ImageAugmentConfig,
    SamplingConfig,
    TrainConfig,
    app_config,
    at_least,
    between,
    positive,
    variant,
)
from tfmm.data import DataChecks, ImageAugmenter, build_pipeline, read_image_files
from tfmm.data.caption_sources import load_caption_examples, object_words
from tfmm.encoders import IMAGE_ENCODERS, build_image_encoder
from tfmm.errors import TfmmError
from tfmm.evaluation import evaluate_captions
from tfmm.export.captioner import export_captioner
from tfmm.layers import DECODERS, build_decoder
from tfmm.models import ImageCaptioner, ImageCaptionerBackbone, ImageCaptionerPreprocessor
from tfmm.train.session import per_worker_batch
from tfmm.visualization import plot_caption


@dataclasses.dataclass
class CaptionDataConfig(DataConfig):
    # "shapes" (built-in scenes), "easy_vqa" (the real easy-VQA images, captioned from their questions),
    # or user data: a folder with captions.jsonl/.csv, a COCO-style captions .json, a TFRecord pattern.
    source: str = "shapes"
    batch_size: int = positive(64)  # images per step, each with one of its captions drawn at random
    # Image augmentation, off by default: a flip contradicts "left of", colour jitter the colour words.
    augment: ImageAugmentConfig = dataclasses.field(default_factory=ImageAugmentConfig)


@dataclasses.dataclass
class CaptionModelConfig:
    image_encoder: object = variant(IMAGE_ENCODERS, "cnn", size="small", normalization="batch")  # batch norm: colours
    # transformer (keras-hub decoder blocks) or gru_attention (Show, Attend and Tell), each with its options
    decoder: object = variant(DECODERS, "transformer")
    label_smoothing: float = between(0, 1, 0.0)
    sequence_length: int = positive(32)  # word pieces incl. [CLS]/[SEP]; the longest shapes caption needs 29
    vocabulary_size: int = positive(400)


@dataclasses.dataclass
class DecodeConfig:
    beam_width: int = positive(3)  # 1 = greedy
    max_beam_width: int = positive(8)  # the widest beam a request may ask for (stored in the model)
    length_penalty: float = at_least(0, 0.0)  # GNMT α: scores are log p / ((5 + length) / 6) ** α
    max_length: int = positive(31)  # tokens after the start token

    def validate(self, root):
        if self.beam_width > self.max_beam_width:
            raise TfmmError(f"decode.beam_width {self.beam_width} is above decode.max_beam_width {self.max_beam_width}")
        holds = root.model.sequence_length - 1
        if root.model.decoder.name == "transformer" and self.max_length > holds:
            raise TfmmError(f"decode.max_length {self.max_length} is more than the transformer decoder holds "
                            f"(model.sequence_length - 1 = {holds})")


# No full int8 for the caption models: it would need calibrating a recurrent state.
CaptionConfig = app_config(
    "CaptionConfig", CaptionDataConfig, CaptionModelConfig, TrainConfig(epochs=30, learning_rate=2e-3),
    ExportConfig(tflite_quantization=["float32", "dynamic_int8"], representative_examples=16),
    quantizations=("float32", "dynamic_int8"), decode=DecodeConfig, sampling=SamplingConfig)  # sampling: eval/predict --sample


DECODE_FLAGS = {"beam_width": ("decode", int, "beam width (1 = greedy)"),
                "max_length": ("decode", int, "longest caption in tokens"),
                "length_penalty": ("decode", float, "GNMT length penalty α"), **SAMPLING_FLAGS}


class Caption(App):
    name, description = "caption", __doc__.splitlines()[0]
    source = load_caption_examples
    config_class, task_class = CaptionConfig, ImageCaptioner
    shortcuts = DECODE_FLAGS
    cannot_honour = {"data.text_augment": "captions are what the model learns to write: augmented ones would teach "
                                          "it wrong captions; data.augment works on the images",
                     "data.augment.mixup": MIXING_REFUSED, "data.augment.cutmix": MIXING_REFUSED}

    def build_preprocessor(self, config, train_examples):
        captions = [c.decode() for e in train_examples.map(lambda e: e["captions"]).as_numpy_iterator() for c in e]
        tokenizer = build_tokenizer(config.model, lambda: captions, config.data.source)
        preprocessor = ImageCaptionerPreprocessor(tokenizer, image_converter(config), config.model.sequence_length)
        cut = preprocessor.tokenize_numpy(captions[:2000])["token_ids"][:, -1] != tokenizer.pad_id
        if cut.any():
            print(f"note: some captions have more than model.sequence_length = {config.model.sequence_length} tokens "
                  "and are cut")
        return preprocessor

    def build_task(self, config, preprocessor):
        m, length = config.model, config.model.sequence_length - 1
        image_encoder = build_image_encoder(m.image_encoder, config.data.image_size)
        decoder = build_decoder(m.decoder, preprocessor.vocabulary_size, length,
                                image_encoder.output["sequence_output"].shape[1])
        return ImageCaptioner(ImageCaptionerBackbone(image_encoder, decoder, length), preprocessor,
                              label_smoothing=m.label_smoothing,
                              attention_regularizer=getattr(m.decoder, "attention_regularizer", 0.0),
                              max_length=config.decode.max_length, length_penalty=config.decode.length_penalty,
                              max_beam_width=config.decode.max_beam_width, name="captioner")

    def pipeline(self, config, examples, training, shard=None, repeat=False):
        """Batches of raw `{"images", "captions"}`: one caption per image, drawn at random (by the stream's
        seed) from its references."""
        augmenter = ImageAugmenter(config.data.augment)
        augmenter = augmenter if training and augmenter.active else None

        def pick(example, seed):
            count = tf.shape(example["captions"])[0]
            index = tf.random.stateless_uniform([], seed, 0, count, dtype=tf.int32)
            return {"images": example["image"], "captions": example["captions"][index]}

        def augment(batch, seed):
            return {**batch, "images": augmenter(batch["images"], seed)}

        return build_pipeline(examples, per_worker_batch(config.data.batch_size, shard), training=training,
                              example_fn=pick, batch_fn=augment if augmenter else None, cache=config.data.cache,
                              shuffle_buffer=config.data.shuffle_buffer, seed=config.train.seed, shard=shard, repeat=repeat)

    def evaluate(self, task, config, split, args=None, beam_width=None):
        data = dataclasses.replace(config.data, source=args.data) if getattr(args, "data", None) else config.data
        dataset = load_caption_examples(data, split, DataChecks(config.data.strict).images)
        sampling = config.sampling if getattr(args, "sample", False) else None
        width = beam_width or config.decode.beam_width
        metrics = evaluate_captions(task, dataset, object_words(data.source), width, sampling, config.decode.length_penalty,
                                    config.decode.max_length)
        return {"method": "sampled" if sampling else f"beam width {width}", **metrics}

    def report(self, title, metrics):
        super().report(f"{title}, {metrics['method']}", metrics)
        for example in metrics.get("samples", []):
            print(f"    {example['caption']!r}   (reference: {example['references'][0]!r})")

    def main_report(self, runner, task, config):
        self.report("test split", self.evaluate(task, config, "test", beam_width=1))
        self.report("test split", self.evaluate(task, config, "test"))

    def export_samples(self, config, checks):
        examples = self.load_split(config, "validation", checks).take(config.export.representative_examples)
        return {"images": np.stack([e["image"] for e in examples.as_numpy_iterator()])}

    def export(self, task, config, samples, base_dir, name, quantizations):
        return export_captioner(task, config, samples, base_dir, name, quantizations)

    def main_pictures(self, task, config, folder):
        image = next(self.load_split(config, "test", DataChecks(strict=config.data.strict)).as_numpy_iterator())["image"]
        out = task.caption_details(image[None], config.decode.beam_width, config.decode.length_penalty, config.decode.max_length)
        return [self.plot(task, image, out["token_ids"][0], out["captions"][0][0][0], folder / "caption.png")]

    @staticmethod
    def plot(task, image, token_ids, caption, path):
        """The image, then each word of its caption with that word's attention over the image."""
        tokenizer = task.preprocessor.tokenizer
        ids = [int(i) for i in token_ids if i != tokenizer.pad_id]  # the caption's tokens and its end token
        words = ["<end>" if i == tokenizer.end_id else tokenizer.id_to_token(i) for i in ids]
        batch = [image] if isinstance(image, bytes) else np.asarray(image)[None]
        pixels = task.preprocessor.image_converter.pixels(batch).numpy()[0]
        return plot_caption(pixels, words, task.attention_maps(image, ids), caption, path)

    def predict(self, task, config, args):
        sampling = config.sampling if args.sample else None
        encoded = read_image_files([args.image])
        out = task.caption_details(encoded, config.decode.beam_width, config.decode.length_penalty,
                                   config.decode.max_length, sampling)
        beams = out["captions"][0]
        caption, score = beams[0]
        print(f"{caption}  (score {score:.3f})")
        for other, other_score in beams[1:]:
            print(f"  {other}  ({other_score:.3f})")
        if args.plot:
            print(f"wrote {self.plot(task, encoded[0], out['token_ids'][0], caption, args.plot)}")
        return {"caption": caption, "score": score, "beams": [{"caption": c, "score": s} for c, s in beams]}

    def add_eval_arguments(self, parser):
        super().add_eval_arguments(parser)
        parser.add_argument("--data", help="evaluate on this source instead (a caption folder, COCO .json, ...)")
        _add_decode_arguments(parser)

    def add_predict_arguments(self, parser):
        parser.add_argument("image")
        parser.add_argument("--plot", help="write a PNG of the caption with each word's attention over the image")
        _add_decode_arguments(parser)


def _add_decode_arguments(parser):
    add_shortcut_arguments(parser, DECODE_FLAGS)
    parser.add_argument("--sample", action="store_true", help="sample (--temperature, --top-k, ...) instead of beam search")


def main(argv=None):
    return Runner(Caption()).main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
