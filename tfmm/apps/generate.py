"""Text-to-image: a VQ-VAE (image tokens) and an autoregressive token transformer, with editing.

`python -m tfmm.apps.generate` with no subcommand runs the main job on the built-in `shapes`:
train the VQ-VAE (`train-vqvae`), encode the images to token records and train the token
transformer (`train`), evaluate (reconstruction PSNR, codebook use, prompt fidelity judged by a
separately trained attribute classifier), write sample grids, and export to
`saved_models/generate/<version>/`.
"""

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
import tensorflow as tf

from tfmm import cli
from tfmm.apps.run_files import TrainedRun
from tfmm.config import DataConfig, ExportConfig, TrainConfig, load_config
from tfmm.data import ImageCheck, build_pipeline, to_float
from tfmm.data.caption_sources import load_caption_examples, object_words
from tfmm.data.images import read_image_file as load_image
from tfmm.encoders import CNNImageEncoder
from tfmm.data.token_records import read_token_records, write_token_records
from tfmm.errors import TfmmError
from tfmm.export.generator import export_generator
from tfmm.models import SceneAttributeClassifier, TextToImageTransformer, VQVAE
from tfmm.models.scene_attribute_classifier import MAX_OBJECTS
from tfmm.text import TextPreprocessor, learn_vocabulary, save_vocabulary
from tfmm.train.session import TrainingSession, per_worker_batch

TASK = "generate"
VQVAE_TASK = "generate_vqvae"
JUDGE_TASK = "generate_judge"


@dataclasses.dataclass
class GenerateDataConfig(DataConfig):
    # "shapes" (built-in scenes; prompts are their captions), or any caption source of the caption app
    # (a caption folder, COCO .json, TFRecords, easy_vqa). The fidelity judge needs the shapes.
    source: str = "shapes"
    # 32 px with ×4 downsampling: 8×8 = 64 tokens per image. At 64 px the same 64 tokens need ×8, which
    # reached 24 dB in the CPU budget against 27.5 dB here after 4 epochs (BENCHMARKS.md notes).
    image_size: int = 32
    batch_size: int = 64
    text_dropout: float = 0.1  # share of training prompts replaced by the empty prompt (classifier-free guidance)


@dataclasses.dataclass
class VQVAEConfig:
    downsample: int = 4  # 4 or 8: a 32×32 image becomes 8×8 or 4×4 tokens
    hidden_dim: int = 64
    residual_blocks: int = 2
    num_codes: int = 256
    code_dim: int = 64
    beta: float = 0.25  # commitment weight
    ema_decay: float = 0.99  # EMA codebook with dead-code restarts; 0 = codebook learnt by gradient


@dataclasses.dataclass
class TokenModelConfig:
    hidden_dim: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_dim: int = 512
    dropout: float = 0.1
    sequence_length: int = 32  # prompt word pieces incl. [CLS]/[SEP]
    vocabulary_size: int = 400


@dataclasses.dataclass
class SampleConfig:
    temperature: float = 1.0
    top_k: int = 256  # keep the k most likely codes; the codebook size or more keeps them all
    top_p: float = 1.0
    guidance_scale: float = 3.0  # classifier-free guidance; 1 = off
    samples_per_prompt: int = 4
    edit_candidates: int = 8  # edits sampled; the one most likely with the tokens after the region is kept
    seed: int = 0


@dataclasses.dataclass
class GenerateConfig:
    data: GenerateDataConfig = dataclasses.field(default_factory=GenerateDataConfig)
    vqvae: VQVAEConfig = dataclasses.field(default_factory=VQVAEConfig)
    vqvae_train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=12, learning_rate=2e-3,
                                                                                     weight_decay=0.0))
    model: TokenModelConfig = dataclasses.field(default_factory=TokenModelConfig)
    sample: SampleConfig = dataclasses.field(default_factory=SampleConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=12, learning_rate=1e-3))
    export: ExportConfig = dataclasses.field(default_factory=lambda: ExportConfig(tflite_quantization=["float32", "dynamic_int8"],
                                                                                   representative_examples=16))


def check_sampling(sample):
    """Sampling settings a user may get wrong, named by field and value."""
    if sample.temperature <= 0:
        raise TfmmError(f"sample.temperature must be above 0, got {sample.temperature}")
    if sample.top_k < 1:
        raise TfmmError(f"sample.top_k must be at least 1 (the codebook size or more keeps every code), got {sample.top_k}")
    if not 0 < sample.top_p <= 1:
        raise TfmmError(f"sample.top_p must be in (0, 1], got {sample.top_p}")
    if sample.samples_per_prompt < 1 or sample.edit_candidates < 1:
        raise TfmmError("sample.samples_per_prompt and sample.edit_candidates must be at least 1")


# ---------------------------------------------------------------------------------------------- data


def examples(config, split, check):
    """`{"image", "captions", "objects"}` per image (the caption app's sources)."""
    return load_caption_examples(config.data, split, check)


def image_batches(dataset, batch_size):
    return dataset.map(lambda e: to_float(e["image"])).batch(batch_size).prefetch(2)


# ------------------------------------------------------------------------------------ stage 1: VQ-VAE


class VQVAERun:
    """A trained VQ-VAE run: `model.keras` and `config.toml`."""

    def __init__(self, path, model, config):
        self.path, self.model, self.config = Path(path), model, config

    @classmethod
    def load(cls, path, overrides=()):
        path = Path(path)
        path = path.parent if path.is_file() else path
        for name in ("model.keras", "config.toml"):
            if not (path / name).is_file():
                raise TfmmError(f"{path} is not a trained VQ-VAE run: {name} is missing")
        config = load_config(GenerateConfig, path / "config.toml", overrides)
        return cls(path, keras.saving.load_model(path / "model.keras", compile=False, safe_mode=True), config)


def build_vqvae(config):
    v = config.vqvae
    return VQVAE(config.data.image_size, v.downsample, v.hidden_dim, v.residual_blocks, v.num_codes, v.code_dim, v.beta,
                 v.ema_decay, name="vqvae")


def train_vqvae(config, run_path=None):
    stage = dataclasses.replace(config, train=config.vqvae_train)
    session = TrainingSession(stage)
    check = ImageCheck(strict=config.data.strict)
    run_path = Path(run_path or cli.run_dir(config.train.output_dir, VQVAE_TASK))
    train_images = examples(config, "train", check).map(lambda e: e["image"]).cache()
    count = sum(1 for _ in train_images)

    def pixels(image, seed):
        del seed
        image = to_float(image)
        return image, image

    def stream():
        return build_pipeline(train_images, per_worker_batch(config.data.batch_size, session.shard), training=True,
                              example_fn=pixels, cache=False, shuffle_buffer=config.data.shuffle_buffer,
                              seed=config.train.seed, shard=session.shard, repeat=True)

    validation = build_pipeline(examples(config, "validation", check).map(lambda e: e["image"]),
                                per_worker_batch(config.data.batch_size, session.shard), training=False,
                                example_fn=pixels, shard=session.shard)
    chief = session.train(VQVAE_TASK, lambda: build_vqvae(config), stream, validation, count, run_path, lambda path: None)
    return VQVAERun.load(run_path) if chief else None


def reconstruction_metrics(vqvae, dataset, batch_size=128):
    """Mean PSNR per image, MSE, and codebook usage / perplexity over `dataset`'s images."""
    psnr, mse, counts = [], [], np.zeros(vqvae.num_codes)
    encode = tf.function(vqvae.encode, reduce_retracing=True)
    decode = tf.function(vqvae.decode, reduce_retracing=True)
    for images in image_batches(dataset, batch_size):
        tokens = encode(images)
        errors = np.mean((decode(tokens).numpy() - images.numpy()) ** 2, axis=(1, 2, 3))
        mse.extend(errors)
        psnr.extend(-10 * np.log10(np.maximum(errors, 1e-10)))
        counts += np.bincount(tokens.numpy().reshape(-1), minlength=vqvae.num_codes)
    share = counts / counts.sum()
    entropy = -(share[share > 0] * np.log(share[share > 0])).sum()
    return {"psnr": float(np.mean(psnr)), "mse": float(np.mean(mse)),
            "codebook_usage": float((counts > 0).mean()), "perplexity": float(np.exp(entropy)), "images": len(psnr)}


# ---------------------------------------------------------------------------- stage 2: token model


def encode_split(vqvae, dataset, folder, batch_size=128):
    """Writes the split's token grids with their captions as TFRecords; returns (pattern, count)."""
    encode = tf.function(vqvae.encode, reduce_retracing=True)

    def batches():
        for batch in dataset.ragged_batch(batch_size):
            tokens = encode(to_float(batch["image"])).numpy()
            captions = [[c.decode() for c in row] for row in batch["captions"].to_list()]
            yield captions, tokens, [o.decode() for o in batch["objects"].numpy()]

    return write_token_records(batches(), folder)


def token_pipeline(config, records, preprocessor, training, shard=None, repeat=False):
    """Batches of `({"text_ids", "image_ids"}, image_ids)`: one caption per image drawn at random, replaced
    by the empty prompt with probability `data.text_dropout` in training (for classifier-free guidance)."""
    dropout = config.data.text_dropout if training else 0.0

    def pick(example, seed):
        count = tf.shape(example["captions"])[0]
        caption = example["captions"][tf.random.stateless_uniform([], seed, 0, count, dtype=tf.int32)]
        dropped = tf.random.stateless_uniform([], seed + 1) < dropout
        return {"caption": tf.where(dropped, "", caption), "tokens": example["tokens"]}

    def to_batch(batch):
        return {"text_ids": preprocessor(batch["caption"])["token_ids"], "image_ids": batch["tokens"]}, batch["tokens"]

    return build_pipeline(records, per_worker_batch(config.data.batch_size, shard), training=training, example_fn=pick,
                          batch_fn=to_batch, cache=config.data.cache, shuffle_buffer=config.data.shuffle_buffer,
                          seed=config.train.seed, shard=shard, repeat=repeat)


def build_token_model(config, preprocessor, vqvae):
    m = config.model
    return TextToImageTransformer(preprocessor.vocabulary_size, m.sequence_length, vqvae.num_codes,
                                  vqvae.grid_size ** 2, m.hidden_dim, m.num_layers, m.num_heads, m.intermediate_dim,
                                  m.dropout, name="token_transformer")


class Run(TrainedRun):
    """A trained text-to-image model: the token transformer, its VQ-VAE, tokenizer and config."""

    task = TASK
    config_class = GenerateConfig

    def __init__(self, path, model, preprocessor, config):
        super().__init__(path, model, preprocessor, config)
        self.vqvae = keras.saving.load_model(self.path / "vqvae.keras", compile=False, safe_mode=True)
        self.null_ids = preprocessor.tokenize_numpy([""])["token_ids"]
        self._generate = {}
        self._decode = tf.function(self.vqvae.decode, reduce_retracing=True)
        self._encode = tf.function(self.vqvae.encode, reduce_retracing=True)

    @property
    def grid_size(self):
        return self.vqvae.grid_size

    def known_words(self, prompt):
        ids = self.preprocessor.tokenize_numpy([prompt])["token_ids"][0]
        special = set(self.preprocessor.special_ids)
        return sum(1 for i in ids if i not in special)

    def check_prompts(self, prompts):
        """Empty prompts are errors; prompts with no known word still run, with a warning (returned)."""
        warnings = []
        for index, prompt in enumerate(prompts):
            if not prompt.strip():
                raise TfmmError(f"prompt #{index} is empty")
            if self.known_words(prompt) == 0:
                warnings.append(f"prompt #{index} {prompt!r} has no word the model knows: the image follows no text")
        for warning in warnings:
            print(f"warning: {warning}")
        return warnings

    def _generator(self, use_cache, forced):
        key = (use_cache, forced)
        if key not in self._generate:
            def run(text_ids, null_ids, scale, temperature, top_k, top_p, seed, forced_ids=None):
                return self.model.generate(text_ids, null_ids, scale, temperature, top_k, top_p, seed,
                                           forced_ids=forced_ids, use_cache=use_cache)

            self._generate[key] = tf.function(run, reduce_retracing=True)
        return self._generate[key]

    def sample_tokens(self, prompts, sample=None, seed=None, use_cache=True, forced_ids=None):
        """Token grids (n, g, g) for `prompts` (one grid per prompt; repeat a prompt for more)."""
        sample = sample or self.config.sample
        check_sampling(sample)
        text_ids = self.preprocessor.tokenize_numpy(list(prompts))["token_ids"]
        seed = sample.seed if seed is None else seed
        args = [tf.constant(text_ids), tf.constant(self.null_ids), tf.constant(float(sample.guidance_scale)),
                tf.constant(float(sample.temperature)), tf.constant(sample.top_k), tf.constant(float(sample.top_p)),
                tf.constant([seed, 1], tf.int64)]
        if forced_ids is not None:
            args.append(tf.constant(forced_ids, tf.int32))
        tokens = self._generator(use_cache, forced_ids is not None)(*args).numpy()
        return tokens.reshape(len(prompts), self.grid_size, self.grid_size)

    def decode(self, tokens):
        return self._decode(tf.constant(tokens, tf.int32)).numpy()

    def encode(self, images):
        return self._encode(tf.constant(images, tf.float32)).numpy()

    def generate(self, prompts, sample=None, seed=None, use_cache=True, batch_size=64):
        """Float images (n, S, S, 3) for `prompts`."""
        images = []
        for start in range(0, len(prompts), batch_size):
            tokens = self.sample_tokens(prompts[start:start + batch_size], sample, (seed or 0) + start, use_cache)
            images.append(self.decode(tokens))
        return np.concatenate(images)

    def edit(self, image, box, prompt, sample=None, seed=None):
        """Re-samples the tokens whose cells meet `box` (x0, y0, x1, y1 in pixels) for `prompt`, keeping the
        rest; of `sample.edit_candidates` samples, keeps the most likely under the model given the whole
        image (so the tokens after the region, which the causal model cannot see while sampling, count)."""
        sample = sample or self.config.sample
        size, grid = image.shape[0], self.grid_size
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
            raise TfmmError(f"region {box} is not inside the {size}×{size} image (x0 < x1, y0 < y1, 0…{size})")
        cell = size / grid
        rows = range(int(y0 // cell), int(math.ceil(y1 / cell)))
        columns = range(int(x0 // cell), int(math.ceil(x1 / cell)))
        tokens = self.encode(image[None])[0]
        forced = tokens.copy()
        for r in rows:
            for c in columns:
                forced[r, c] = -1
        count = sample.edit_candidates
        forced = np.repeat(forced.reshape(1, -1), count, axis=0)
        candidates = self.sample_tokens([prompt] * count, sample, seed, forced_ids=forced).reshape(count, -1)
        text_ids = np.repeat(self.preprocessor.tokenize_numpy([prompt])["token_ids"], count, axis=0)
        scores = self.model.log_likelihood(tf.constant(text_ids), tf.constant(candidates)).numpy()
        best = candidates[int(np.argmax(scores))].reshape(1, grid, grid)
        return self.decode(best)[0], {"cells": len(rows) * len(columns), "tokens": grid * grid}

    @classmethod
    def load(cls, path, overrides=()):
        path = Path(path)
        path = path.parent if path.is_file() else path
        if path.is_dir() and not (path / "vqvae.keras").is_file():
            raise TfmmError(f"{path} is not a trained {TASK} run: vqvae.keras is missing")
        return super().load(path, overrides)


def train(config, vqvae_run=None, run_path=None):
    """Stage 2: encodes the splits with the VQ-VAE to token records, then trains the token transformer."""
    session = TrainingSession(config)
    check_sampling(config.sample)
    check = ImageCheck(strict=config.data.strict)
    vqvae_run = vqvae_run or VQVAERun.load(cli.latest_run(config.train.output_dir, VQVAE_TASK))
    vqvae = vqvae_run.model
    if vqvae.image_size != config.data.image_size:
        raise TfmmError(f"the VQ-VAE in {vqvae_run.path} takes {vqvae.image_size}px images; data.image_size is "
                        f"{config.data.image_size}")
    run_path = Path(run_path or cli.run_dir(config.train.output_dir, TASK))
    token_dir = run_path / "tokens"
    records = {}
    for split in ("train", "validation"):
        pattern = token_dir / split / "tokens-*.tfrecord"
        if not tf.io.gfile.glob(str(pattern)):  # a resumed run keeps its records
            started = time.time()
            _, count = encode_split(vqvae, examples(config, split, check), token_dir / split)
            print(f"encoded {count} {split} images to {vqvae.grid_size}×{vqvae.grid_size} tokens in "
                  f"{time.time() - started:.0f} s → {token_dir / split}")
        records[split] = read_token_records(pattern)
    captions = [c.decode() for e in records["train"].map(lambda e: e["captions"]).as_numpy_iterator() for c in e]
    count = sum(1 for _ in records["train"])
    preprocessor = TextPreprocessor(learn_vocabulary(captions, config.model.vocabulary_size), config.model.sequence_length)

    def stream():
        return token_pipeline(config, records["train"], preprocessor, training=True, shard=session.shard, repeat=True)

    validation = token_pipeline(config, records["validation"], preprocessor, training=False, shard=session.shard)

    def write_assets(path):
        save_vocabulary(preprocessor.vocabulary, path / "vocabulary.txt")
        vqvae.save(path / "vqvae.keras")

    chief = session.train(TASK, lambda: build_token_model(config, preprocessor, vqvae), stream, validation, count,
                          run_path, write_assets)
    return Run.load(run_path) if chief else None


# ------------------------------------------------------------------------------------- fidelity judge


def scene_labels(objects, colours, shapes):
    """Judge labels of a scene's objects ("colour shape|…", left to right): count and per-slot classes."""
    things = [o.split() for o in objects.split("|") if o]
    labels = {"count": len(things) - 1}
    for slot in range(MAX_OBJECTS):
        colour, shape = things[slot] if slot < len(things) else (None, None)
        labels[f"colour{slot}"] = colours.index(colour) + 1 if colour else 0
        labels[f"shape{slot}"] = shapes.index(shape) + 1 if shape else 0
    return labels


def judge_encoder(image_size):
    """Three stages of two convs: a 4×4 grid of regions at 32 px (the registry's `small` cnn leaves 2×2,
    too coarse to tell which object is where: a judge on it read only 38% of real test scenes right)."""
    return CNNImageEncoder(image_size=image_size, filters=(32, 64, 128), convs_per_stage=2, normalization="batch")


def train_judge(config, run_path=None, epochs=10):
    """Trains the attribute classifier on real images of the source (shapes); returns the model."""
    words = object_words(config.data.source)
    if words is None:
        raise TfmmError(f"data.source {config.data.source}: prompt fidelity needs the objects of each image "
                        "(the built-in shapes)")
    colours, shapes = words
    judge_config = dataclasses.replace(config, train=TrainConfig(epochs=epochs, learning_rate=2e-3,
                                                                 output_dir=config.train.output_dir))
    session = TrainingSession(judge_config)
    check = ImageCheck()
    run_path = Path(run_path or cli.run_dir(config.train.output_dir, JUDGE_TASK))

    def labelled(split, dataset=None):
        dataset = examples(config, split, check) if dataset is None else dataset
        rows = [(e["image"], scene_labels(e["objects"].decode(), colours, shapes)) for e in dataset.as_numpy_iterator()]
        images = np.stack([r[0] for r in rows])
        labels = {k: np.array([r[1][k] for r in rows], np.int32) for k in rows[0][1]}
        return tf.data.Dataset.from_tensor_slices((images, labels))

    def to_model(images, labels):
        return to_float(images), labels

    train_set = labelled("train")
    if config.data.source == "shapes":
        # Real images of the held-out colour–shape combinations teach the judge to read them (trained on the seen
        # combinations only, it read 13% of held-out scenes right); the generator never sees them, and fidelity on
        # held-out prompts is measured on the other half of the split.
        heldout = examples(config, "heldout", check)
        train_set = train_set.concatenate(labelled("heldout", heldout.take(judged_heldout_start(config))))
    count = sum(1 for _ in train_set)

    def stream():
        return build_pipeline(train_set, config.data.batch_size, training=True, cache=False,
                              batch_fn=to_model, seed=config.train.seed, repeat=True)

    validation = build_pipeline(labelled("validation"), config.data.batch_size, training=False, cache=False,
                                batch_fn=to_model)
    chief = session.train(JUDGE_TASK, lambda: SceneAttributeClassifier(
        judge_encoder(config.data.image_size), len(colours), len(shapes), name="judge"),
        stream, validation, count, run_path, lambda path: None)
    return keras.saving.load_model(run_path / "model.keras", compile=False, safe_mode=True) if chief else None


def judged_heldout_start(config):
    """Held-out images before this index train the judge; those from it on are for evaluation."""
    return sum(1 for _ in examples(config, "heldout", ImageCheck())) // 2


def judge_scenes(judge, images, objects, colours, shapes):
    """Share of images whose objects (count, then colour and shape left to right) all read as `objects`."""
    predicted = judge.predict(np.asarray(images, np.float32), batch_size=256, verbose=0)
    right = []
    for i, truth in enumerate(objects):
        labels = scene_labels(truth, colours, shapes)
        right.append(all(int(predicted[name][i].argmax()) == labels[name] for name in labels))
    return float(np.mean(right)), right


def load_judge(path):
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise TfmmError(f"judge model not found: {path}")
    return keras.saving.load_model(path, compile=False, safe_mode=True)


# --------------------------------------------------------------------------------------- evaluation


def prompts_of(config, split, limit):
    """The first caption and the objects of up to `limit` images of `split` (of `heldout`: of the half
    the judge did not train on)."""
    dataset = examples(config, split, ImageCheck())
    if split == "heldout":
        dataset = dataset.skip(judged_heldout_start(config))
    rows = [(e["captions"][0].decode(), e["objects"].decode(), e["image"]) for e in dataset.take(limit).as_numpy_iterator()]
    return [r[0] for r in rows], [r[1] for r in rows], np.stack([r[2] for r in rows]).astype(np.float32) / 255.0


def evaluate(run, judge=None, retrieval=None, prompts=200, seed=0):
    """PSNR and codebook use on the test split; prompt fidelity over test and held-out prompts (with a judge);
    the retrieval model's image–text similarity of samples and of real images (with a retrieval run)."""
    config = run.config
    metrics = {f"reconstruction_{k}": v for k, v in
               reconstruction_metrics(run.vqvae, examples(config, "test", ImageCheck())).items()}
    words = object_words(config.data.source)
    splits = ["test", "heldout"] if config.data.source == "shapes" else ["test"]
    for split in splits:
        texts, objects, real = prompts_of(config, split, prompts)
        started = time.perf_counter()
        generated = run.generate(texts, seed=seed)
        metrics[f"{split}_seconds_per_image"] = (time.perf_counter() - started) / len(texts)
        if judge is not None and words:
            metrics[f"{split}_prompt_fidelity"], _ = judge_scenes(judge, generated, objects, *words)
            metrics[f"{split}_judge_accuracy_on_real_images"], _ = judge_scenes(judge, real, objects, *words)
        if retrieval is not None:
            size = retrieval.model.backbone.image_encoder.input.shape[1]
            text_embeddings = retrieval.embed_texts(texts)
            for name, images in (("samples", generated), ("real_images", real)):
                resized = tf.image.resize(images, (size, size)).numpy() if size != images.shape[1] else images
                metrics[f"{split}_retrieval_similarity_{name}"] = float(
                    np.mean(np.sum(retrieval.embed_images(resized) * text_embeddings, axis=-1)))
        metrics[f"{split}_prompts"] = len(texts)
    return metrics


# ------------------------------------------------------------------------------------------- images


def to_png(image, path):
    from PIL import Image

    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(path)


def write_grid(images, rows, path, titles=None):
    """Images in a grid (one row per prompt) with the prompts as row titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = math.ceil(len(images) / rows)
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns + 2.5, 1.7 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, image in enumerate(images):
        axes.flat[index].imshow(np.clip(image, 0, 1))
    for row, title in enumerate(titles or []):
        axes[row, 0].set_title(title, fontsize=8, loc="left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def export(run, name=None):
    config = run.config
    samples = np.stack([e["image"] for e in examples(config, "validation", ImageCheck())
                        .take(config.export.representative_examples).as_numpy_iterator()]).astype(np.float32) / 255.0
    quantizations = config.export.tflite_quantization if config.export.tflite else []
    return export_generator(run.model, run.vqvae, run.preprocessor, config, run.encode(samples),
                            config.export.base_dir, name or config.export.name or TASK, quantizations)


# --------------------------------------------------------------------------------------- CLI handlers


def _sample_overrides(args):
    pairs = (("temperature", args.temperature), ("top_k", args.top_k), ("top_p", args.top_p),
             ("guidance_scale", args.guidance_scale), ("seed", args.seed))
    return [f"sample.{key}={value}" for key, value in pairs if value is not None]


def _run(args):
    args.set = list(args.set) + _sample_overrides(args)
    return Run.from_args(args)


def cmd_train_vqvae(args):
    config = cli.resolve_config(GenerateConfig, args)
    run = train_vqvae(config, args.run_dir)
    if run is not None:
        cli.print_metrics(f"validation reconstruction ({run.path})",
                          reconstruction_metrics(run.model, examples(config, "validation", ImageCheck())))


def cmd_train(args):
    config = cli.resolve_config(GenerateConfig, args)
    vqvae_run = VQVAERun.load(args.vqvae) if args.vqvae else None
    run = train(config, vqvae_run, args.run_dir)
    if run is not None:
        print(f"trained {run.path}")


def cmd_sample(args):
    run = _run(args)
    prompts = args.prompts
    warnings = run.check_prompts(prompts)
    count = run.config.sample.samples_per_prompt
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = run.generate([p for p in prompts for _ in range(count)], seed=run.config.sample.seed)
    for index, image in enumerate(images):
        to_png(image, out / f"prompt{index // count}_sample{index % count}.png")
    write_grid(images, len(prompts), out / "grid.png", prompts)
    print(f"wrote {len(images)} images and grid.png to {out}" + (f" ({len(warnings)} warning(s))" if warnings else ""))


def cmd_edit(args):
    run = _run(args)
    run.check_prompts([args.prompt])
    image = load_image(args.image, run.vqvae.image_size)
    try:
        box = tuple(float(v) for v in args.region.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise TfmmError(f"--region {args.region!r}: give x0,y0,x1,y1 in pixels")
    edited, info = run.edit(image, box, args.prompt)
    to_png(edited, args.output)
    print(f"re-sampled {info['cells']} of {info['tokens']} tokens; wrote {args.output}")


def cmd_eval(args):
    run = _run(args)
    judge = load_judge(args.judge) if args.judge else None
    if judge is None and object_words(run.config.data.source):
        try:
            judge = load_judge(cli.latest_run(run.config.train.output_dir, JUDGE_TASK))
        except TfmmError:
            print("training the attribute classifier that judges fidelity (once; later evals reuse it)")
            judge = train_judge(run.config)
    retrieval = None
    if args.retrieval_model:
        from tfmm.apps import retrieval as retrieval_app

        retrieval = retrieval_app.Run.load(args.retrieval_model)
    metrics = evaluate(run, judge, retrieval, args.prompts, run.config.sample.seed)
    cli.print_metrics(f"generate ({run.path})", metrics)
    if args.output:
        cli.write_json(args.output, metrics)


def cmd_export(args):
    print(f"exported {export(Run.from_args(args), name=args.name)}")


def cmd_main_job(args):
    """Both stages on shapes, the fidelity judge, evaluation, sample grid, export."""
    config = cli.resolve_config(GenerateConfig, args)
    vqvae_run = train_vqvae(config)
    if vqvae_run is None:
        return
    run = train(config, vqvae_run)
    judge = train_judge(config)
    cli.print_metrics("evaluation", evaluate(run, judge))
    texts, _, _ = prompts_of(config, "test", 6)
    images = run.generate([t for t in texts for _ in range(4)])
    write_grid(images, len(texts), run.path / "samples.png", texts)
    print(f"\nwrote {run.path / 'samples.png'}\nexported {export(run)}")


def _add_sample_arguments(parser):
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--guidance-scale", type=float, help="classifier-free guidance (1 = off)")
    parser.add_argument("--seed", type=int)


def parser():
    app = cli.AppParser(TASK, __doc__.splitlines()[0], cmd_main_job, cmd_train)
    app.subparsers.choices["train"].add_argument("--vqvae", help="trained VQ-VAE run (default: the latest)")
    app.command("train-vqvae", cmd_train_vqvae, "stage 1: train the VQ-VAE", model=False).add_argument(
        "--run-dir", help="run directory; an interrupted run given here resumes")
    s = app.command("sample", cmd_sample, "prompts → PNG files and a grid")
    s.add_argument("prompts", nargs="+")
    s.add_argument("--output-dir", default="samples")
    _add_sample_arguments(s)
    s = app.command("edit", cmd_edit, "re-draw a region of an image for a prompt")
    s.add_argument("image")
    s.add_argument("--region", required=True, help="x0,y0,x1,y1 in pixels of the model's image size")
    s.add_argument("--prompt", required=True)
    s.add_argument("--output", default="edited.png")
    _add_sample_arguments(s)
    s = app.command("eval", cmd_eval, "PSNR, codebook use, prompt fidelity", output=True)
    s.add_argument("--judge", help="attribute classifier (default: the latest trained, else train one)")
    s.add_argument("--retrieval-model", help="a trained retrieval run: also report image–text similarity")
    s.add_argument("--prompts", type=int, default=200, help="prompts per split")
    _add_sample_arguments(s)
    app.command("export", cmd_export, "SavedModel (generate/encode/decode) and the VQ-VAE decoder as TFLite").add_argument(
        "--name", help="model name under saved_models/ (default: export.name or generate)")
    return app.parser


def main(argv=None):
    return cli.main(parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
