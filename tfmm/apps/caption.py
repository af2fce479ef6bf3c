"""Image captioning: train, eval (COCO metrics + object check), predict with attention maps, export.

`python -m tfmm.apps.caption` with no subcommand runs the main job: train the default config on
the built-in `shapes` captions, evaluate greedy and beam-search captions on the test split, and
export to `saved_models/caption/<version>/` (a SavedModel that captions image bytes, and TFLite).
"""

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
import tensorflow as tf

from tfmm import cli
from tfmm.apps.model_parts import build_image_encoder_from, check_model_names
from tfmm.apps.run_files import TrainedRun
from tfmm.config import DataConfig, ExportConfig, TrainConfig
from tfmm.data import ImageCheck, build_pipeline, to_float
from tfmm.data.caption_sources import load_caption_examples, object_words
from tfmm.data.images import read_image_file
from tfmm.errors import TfmmError
from tfmm.export.captioner import export_captioner
from tfmm.layers import build_decoder
from tfmm.metrics.captioning import caption_metrics, object_correctness
from tfmm.models import ImageCaptioner
from tfmm.text import TextPreprocessor, learn_vocabulary, save_vocabulary
from tfmm.train.session import TrainingSession, count_examples, per_worker_batch

TASK = "caption"


@dataclasses.dataclass
class CaptionDataConfig(DataConfig):
    # "shapes" (built-in scenes), "easy_vqa" (the real easy-VQA images, captioned from their questions),
    # or user data: a folder with captions.jsonl/.csv, a COCO-style captions .json, a TFRecord pattern.
    source: str = "shapes"
    batch_size: int = 64  # images per step, each with one of its captions drawn at random


@dataclasses.dataclass
class CaptionModelConfig:
    image_encoder: str = "cnn"
    image_encoder_size: str = "small"
    image_encoder_weights: str = ""
    image_encoder_trainable: str = "full"
    image_normalization: str = "batch"  # cnn: batch norm keeps absolute colours (see the vqa app)
    decoder: str = "transformer"  # transformer (keras-hub decoder blocks) or gru_attention (Show, Attend and Tell)
    hidden_dim: int = 256  # GRU state / Transformer width
    embedding_dim: int = 128  # gru_attention: word embedding and deep output
    attention_dim: int = 128  # gru_attention: additive attention
    decoder_layers: int = 2  # transformer blocks
    decoder_heads: int = 4  # transformer
    intermediate_dim: int = 512  # transformer feed-forward
    dropout: float = 0.1
    label_smoothing: float = 0.0
    attention_regularizer: float = 0.0  # doubly stochastic attention λ (gru_attention's paper uses 1); 0 = off
    sequence_length: int = 32  # word pieces incl. [CLS]/[SEP]; the longest shapes caption needs 29
    vocabulary_size: int = 400


@dataclasses.dataclass
class DecodeConfig:
    beam_width: int = 3  # 1 = greedy
    max_beam_width: int = 8  # the widest beam a request may ask for
    length_penalty: float = 0.0  # GNMT α: scores are log p / ((5 + length) / 6) ** α
    max_length: int = 31  # tokens after the start token; capped at what the decoder can hold
    temperature: float = 1.0  # sampling (--sample)
    top_k: int = 0  # sampling: keep the k most likely tokens; 0 = all
    top_p: float = 1.0  # sampling: nucleus; 1 = all


@dataclasses.dataclass
class CaptionConfig:
    data: CaptionDataConfig = dataclasses.field(default_factory=CaptionDataConfig)
    model: CaptionModelConfig = dataclasses.field(default_factory=CaptionModelConfig)
    decode: DecodeConfig = dataclasses.field(default_factory=DecodeConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=30, learning_rate=2e-3))
    export: ExportConfig = dataclasses.field(
        default_factory=lambda: ExportConfig(tflite_quantization=["float32", "dynamic_int8"], representative_examples=16))


# ---------------------------------------------------------------------------------------------- data


def examples(config, split, check):
    return load_caption_examples(config.data, split, check)


def training_captions(dataset):
    return [c.decode() for e in dataset.map(lambda e: e["captions"]).as_numpy_iterator() for c in e]


def pipeline(config, dataset, preprocessor, training, shard=None, repeat=False):
    """Batches of `({"images", "token_ids"}, next token ids, weights)`: one caption per image, drawn
    at random (by the stream's seed) from its references; weight 0 on padding."""

    def pick(example, seed):
        count = tf.shape(example["captions"])[0]
        index = tf.random.stateless_uniform([], seed, 0, count, dtype=tf.int32)
        return {"image": example["image"], "caption": example["captions"][index]}

    def to_batch(batch):
        tokens = preprocessor(batch["caption"])
        ids, mask = tokens["token_ids"], tokens["padding_mask"]
        return {"images": to_float(batch["image"]), "token_ids": ids[:, :-1]}, ids[:, 1:], tf.cast(mask[:, 1:], tf.float32)

    return build_pipeline(dataset, per_worker_batch(config.data.batch_size, shard), training=training,
                          example_fn=pick, batch_fn=to_batch, cache=config.data.cache,
                          shuffle_buffer=config.data.shuffle_buffer, seed=config.train.seed, shard=shard, repeat=repeat)


def check_decode(decode, max_positions=None):
    """Decoding settings a user may get wrong, named by field and value."""
    if decode.max_length < 1:
        raise TfmmError(f"decode.max_length must be at least 1, got {decode.max_length}")
    if not 1 <= decode.beam_width <= decode.max_beam_width:
        raise TfmmError(f"beam width must be between 1 and decode.max_beam_width ({decode.max_beam_width}), "
                        f"got {decode.beam_width}")
    if decode.temperature <= 0:
        raise TfmmError(f"decode.temperature must be above 0, got {decode.temperature}")
    if decode.top_k < 0:
        raise TfmmError(f"decode.top_k must be 0 (off) or more, got {decode.top_k}")
    if not 0 < decode.top_p <= 1:
        raise TfmmError(f"decode.top_p must be in (0, 1], got {decode.top_p}")
    if max_positions is not None and decode.max_length > max_positions:
        print(f"decode.max_length {decode.max_length} is more than the decoder holds; using {max_positions}")


# --------------------------------------------------------------------------------------------- model


def build_model(config, preprocessor):
    m = config.model
    image_encoder = build_image_encoder_from(m, config.data.image_size)
    decoder = build_decoder(
        m.decoder, vocabulary_size=preprocessor.vocabulary_size, sequence_length=m.sequence_length - 1,
        num_regions=image_encoder.output["sequence_output"].shape[1], hidden_dim=m.hidden_dim,
        embedding_dim=m.embedding_dim, attention_dim=m.attention_dim, num_layers=m.decoder_layers,
        num_heads=m.decoder_heads, intermediate_dim=m.intermediate_dim, dropout=m.dropout)
    return ImageCaptioner(image_encoder, decoder, m.sequence_length - 1, preprocessor.start_id, preprocessor.end_id,
                          preprocessor.pad_id, label_smoothing=m.label_smoothing,
                          attention_regularizer=m.attention_regularizer, name="captioner")


class Run(TrainedRun):
    """A trained captioner with its config, tokenizer and run directory."""

    task = TASK
    config_class = CaptionConfig

    def __init__(self, path, model, preprocessor, config):
        super().__init__(path, model, preprocessor, config)
        self._beam = tf.function(lambda images, max_length, width, alpha: model.generate(images, max_length, width, alpha),
                                 reduce_retracing=True)
        self._sample = tf.function(
            lambda images, max_length, temperature, top_k, top_p, seed: model.generate(
                images, max_length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, sample=True),
            reduce_retracing=True)

    @property
    def max_length(self):
        return min(self.config.decode.max_length, self.model.max_positions)

    def caption(self, images, beam_width=None, sample=False, seed=0, decode=None):
        """Float images (n, S, S, 3) → per image a list of (caption, score), best first: beam search
        (width 1 = greedy), or with `sample` one caption drawn with the temperature / top-k / top-p of `decode`."""
        decode = decode or self.config.decode
        if beam_width is not None:
            decode = dataclasses.replace(decode, beam_width=beam_width)
        check_decode(decode, self.model.max_positions)
        images = tf.constant(images, tf.float32)
        length = tf.constant(min(decode.max_length, self.model.max_positions))
        if sample:
            out = self._sample(images, length, tf.constant(decode.temperature), tf.constant(decode.top_k),
                               tf.constant(decode.top_p), tf.constant([seed, 0], tf.int64))
        else:
            out = self._beam(images, length, tf.constant(decode.beam_width), tf.constant(decode.length_penalty))
        ids, scores = out["token_ids"].numpy(), out["scores"].numpy()
        return [[(self.preprocessor.detokenize_numpy(ids[i, k]), float(scores[i, k])) for k in range(ids.shape[1])]
                for i in range(len(ids))]

    def attention(self, image, caption_ids):
        """Per generated token, the decoder's attention over the image regions: (tokens, grid, grid)."""
        length = self.model.sequence_length
        inputs = np.full((1, length), self.model.pad_id, np.int32)
        tokens = [self.model.start_id, *caption_ids][:length]
        inputs[0, :len(tokens)] = tokens
        weights = self.forward({"images": tf.constant(image[None], tf.float32), "token_ids": inputs})["attention"][0]
        side = int(round(math.sqrt(weights.shape[-1])))
        return weights[:len(caption_ids)].reshape(len(caption_ids), side, side)


# ------------------------------------------------------------------------------------------ commands


def train(config, run_path=None):
    """Trains under the configured strategy and precision; returns the `Run` (None on non-chief workers)."""
    session = TrainingSession(config)  # first: multi-worker needs an untouched runtime
    check_model_names(config.model)
    check_decode(config.decode)
    check = ImageCheck(strict=config.data.strict)
    run_path = Path(run_path or cli.run_dir(config.train.output_dir, TASK))
    train_examples = examples(config, "train", check)
    captions = training_captions(train_examples)
    if not captions:
        raise TfmmError(f"data.source {config.data.source}: the training split has no captions")
    preprocessor = TextPreprocessor(learn_vocabulary(captions, config.model.vocabulary_size), config.model.sequence_length)
    cut = preprocessor.tokenize_numpy(captions[:2000])["token_ids"][:, -1] != preprocessor.pad_id
    if cut.any():
        print(f"note: some captions have more than model.sequence_length = {config.model.sequence_length} tokens "
              "and are cut")

    def train_stream():
        return pipeline(config, train_examples, preprocessor, training=True, shard=session.shard, repeat=True)

    validation = pipeline(config, examples(config, "validation", check), preprocessor, training=False,
                          shard=session.shard)

    def write_assets(path):
        save_vocabulary(preprocessor.vocabulary, path / "vocabulary.txt")

    chief = session.train(TASK, lambda: build_model(config, preprocessor), train_stream, validation,
                          count_examples(train_examples), run_path, write_assets)
    if check.summary():
        print(check.summary())
    return Run.load(run_path) if chief else None


def evaluate(run, dataset, beam_width=None, sample=False, seed=0, batch_size=64):
    """Captions every image of `dataset` and scores them against all its references: BLEU-1…4,
    METEOR (with Java), ROUGE-L, CIDEr-D, and — where the source knows its objects — the share of
    captions naming every object with the right colour and shape. Also captions per second."""
    references, hypotheses, objects, seconds = {}, {}, [], 0.0
    for batch in dataset.ragged_batch(batch_size).prefetch(2):
        images = to_float(batch["image"]).numpy()
        started = time.perf_counter()
        captions = run.caption(images, beam_width=beam_width, sample=sample, seed=seed)
        seconds += time.perf_counter() - started
        for i, (refs, truth) in enumerate(zip(batch["captions"].to_list(), batch["objects"].numpy())):
            key = len(references)
            references[key] = [r.decode() for r in refs]
            hypotheses[key] = captions[i][0][0]
            objects.append(truth.decode())
    if not references:
        raise TfmmError("no image to evaluate")
    metrics = caption_metrics(references, hypotheses)
    words = object_words(run.config.data.source)
    if words and all(objects):
        share, mistakes = object_correctness([hypotheses[k] for k in sorted(hypotheses)], objects, *words)
        metrics["object_correctness"] = share
        metrics["top_object_mistakes"] = ", ".join(f"{m} ×{n}" for m, n in mistakes.most_common(3)) or "none"
    metrics["images"] = len(references)
    metrics["captions_per_second"] = len(references) / seconds
    metrics["examples"] = [{"caption": hypotheses[k], "references": references[k][:2]} for k in range(min(3, len(references)))]
    return metrics


def load_image(path, run):
    return read_image_file(path, run.model.image_size)


def plot_caption(run, image, caption_ids, caption, path):
    """The image, then one panel per generated word with its attention over the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words = ["<end>" if i == run.model.end_id else run.preprocessor.vocabulary[i] for i in caption_ids]
    maps = run.attention(image, caption_ids)
    columns = 6
    rows = math.ceil((len(words) + 1) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title("input", fontsize=9)
    for axis, word, weights in zip(axes.flat[1:], words, maps):
        axis.imshow(image)
        axis.imshow(weights, cmap="inferno", alpha=0.6, extent=(0, image.shape[1], image.shape[0], 0),
                    interpolation="bilinear")
        axis.set_title(word, fontsize=10)
    figure.suptitle(caption, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def export(run, name=None):
    """Exports the next version; sample validation images check that TFLite writes the same captions."""
    config = run.config
    samples = [e["image"] for e in examples(config, "validation", ImageCheck(strict=config.data.strict))
               .take(config.export.representative_examples).as_numpy_iterator()]
    quantizations = config.export.tflite_quantization if config.export.tflite else []
    return export_captioner(run.model, run.preprocessor, config, np.stack(samples).astype(np.float32) / 255.0,
                            config.export.base_dir, name or config.export.name or TASK, quantizations)


# --------------------------------------------------------------------------------------- CLI handlers


def _decode_overrides(args):
    return [f"decode.{key}={value}" for key, value in
            (("beam_width", args.beam_width), ("temperature", args.temperature), ("top_k", args.top_k),
             ("top_p", args.top_p), ("max_length", args.max_length), ("length_penalty", args.length_penalty))
            if value is not None]


def _run(args):
    args.set = list(args.set) + _decode_overrides(args)
    return Run.from_args(args)


def report(title, metrics):
    shown = {k: v for k, v in metrics.items() if k != "examples"}
    cli.print_metrics(title, shown)
    for example in metrics["examples"]:
        print(f"    {example['caption']!r}   (reference: {example['references'][0]!r})")


def cmd_train(args):
    config = cli.resolve_config(CaptionConfig, args)
    run = train(config, args.run_dir)
    if run is not None:
        report("validation (greedy)", evaluate(run, examples(config, "validation", ImageCheck()), beam_width=1))


def cmd_eval(args):
    run = _run(args)
    data = run.config.data
    if args.data:
        data = dataclasses.replace(data, source=args.data)
        run.config = dataclasses.replace(run.config, data=data)
    dataset = load_caption_examples(data, args.split, ImageCheck(strict=args.strict))
    metrics = evaluate(run, dataset, sample=args.sample, seed=args.seed)
    method = "sampled" if args.sample else f"beam width {run.config.decode.beam_width}"
    report(f"{args.data or args.split} ({method}, {run.path})", metrics)
    if args.output:
        cli.write_json(args.output, {"method": method, **metrics})


def cmd_predict(args):
    run = _run(args)
    image = load_image(args.image, run)
    beams = run.caption(image[None], sample=args.sample, seed=args.seed)[0]
    caption, score = beams[0]
    print(f"{caption}  (score {score:.3f})")
    for other, other_score in beams[1:]:
        print(f"  {other}  ({other_score:.3f})")
    if args.plot:
        ids = run.preprocessor.tokenize_numpy([caption])["token_ids"][0]
        ids = [int(i) for i in ids[1:] if i != run.model.pad_id]  # the caption's tokens and its end token
        plot_caption(run, image, ids, caption, args.plot)
        print(f"wrote {args.plot}")
    if args.output:
        cli.write_json(args.output, {"caption": caption, "score": score,
                                     "beams": [{"caption": c, "score": s} for c, s in beams]})


def cmd_export(args):
    run = Run.from_args(args)
    print(f"exported {export(run, name=args.name)}")


def cmd_main_job(args):
    """Train the default config on shapes, evaluate greedy and beam captions on the test split, export."""
    config = cli.resolve_config(CaptionConfig, args)
    run = train(config)
    if run is None:
        return
    test = examples(config, "test", ImageCheck())
    report("test split (greedy)", evaluate(run, test, beam_width=1))
    report(f"test split (beam width {config.decode.beam_width})", evaluate(run, test))
    print(f"\nexported {export(run)}")


def _add_decode_arguments(parser):
    parser.add_argument("--beam-width", type=int, help="beam width (1 = greedy; default decode.beam_width)")
    parser.add_argument("--max-length", type=int, help="longest caption in tokens (default decode.max_length)")
    parser.add_argument("--length-penalty", type=float, help="GNMT length penalty α (default decode.length_penalty)")
    parser.add_argument("--sample", action="store_true", help="sample instead of beam search")
    parser.add_argument("--temperature", type=float, help="sampling temperature (> 0)")
    parser.add_argument("--top-k", type=int, help="sampling: keep the k most likely tokens (0 = all)")
    parser.add_argument("--top-p", type=float, help="sampling: nucleus probability (1 = all)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")


def parser():
    app = cli.AppParser(TASK, __doc__.splitlines()[0], cmd_main_job, cmd_train)
    s = app.command("eval", cmd_eval, "BLEU, METEOR, ROUGE-L, CIDEr-D and object correctness", output=True)
    s.add_argument("--split", default="test")
    s.add_argument("--data", help="evaluate on this source instead (a caption folder, COCO .json, ...)")
    _add_decode_arguments(s)
    s = app.command("predict", cmd_predict, "caption an image", output=True)
    s.add_argument("image")
    s.add_argument("--plot", help="write a PNG of the caption with each word's attention over the image")
    _add_decode_arguments(s)
    app.command("export", cmd_export, "SavedModel (TF Serving layout) and TFLite").add_argument(
        "--name", help="model name under saved_models/ (default: export.name or caption)")
    return app.parser


def main(argv=None):
    return cli.main(parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
