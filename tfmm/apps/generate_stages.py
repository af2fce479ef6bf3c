"""The text-to-image app's two supporting trainings, each a runner app of its own with its own runs:

- `VQVAEStage` (`runs/generate_vqvae/`): stage 1, the VQ-VAE that turns images into tokens and back;
- `JudgeStage` (`runs/generate_judge/`): the scene reader that judges prompt fidelity, trained on real
  `shapes` images (and half of the held-out combinations' real images, so it can read them; fidelity on
  held-out prompts is measured on the other half).

Both read the data config of the generate app; each trains with its own `[vqvae_train]` / `[judge_train]`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfmm.apps.model_parts import image_converter
from tfmm.apps.runner import MIXING_REFUSED, App
from tfmm.data import DataChecks, ImageAugmenter, build_pipeline
from tfmm.data.caption_sources import load_caption_examples, object_words
from tfmm.encoders import CNNImageEncoder
from tfmm.errors import TfmmError
from tfmm.evaluation import judge_scenes, reconstruction_metrics, scene_labels
from tfmm.models import VQVAE, ImagePreprocessor, SceneAttributeClassifier, VQVAEBackbone
from tfmm.train.session import count_examples, per_worker_batch


def with_training(config, section):
    """The generate config with `section` (`vqvae_train`, `judge_train`) as the training settings."""
    return dataclasses.replace(config, train=getattr(config, section))


def heldout_split_point(config, checks):
    """Held-out images before this index train the judge; those from it on are for evaluation."""
    return count_examples(load_caption_examples(config.data, "heldout", checks.images)) // 2


class _ImageStage(App):
    """Shared by both stages: images of the generate app's caption source, one preprocessor."""

    model_sections = ("model", "vqvae")
    cannot_honour = {"data.augment.mixup": MIXING_REFUSED, "data.augment.cutmix": MIXING_REFUSED}
    source = load_caption_examples

    def build_preprocessor(self, config, train_examples):
        return ImagePreprocessor(image_converter=image_converter(config))

    def export_samples(self, config, checks):
        raise TfmmError(f"{self.name} is a part of the generate app; export the generate model instead")


class VQVAEStage(_ImageStage):
    name, description = "generate_vqvae", "stage 1 of text-to-image: the VQ-VAE"
    task_class = VQVAE

    def build_task(self, config, preprocessor):
        v = config.vqvae
        backbone = VQVAEBackbone(config.data.image_size, v.downsample, v.hidden_dim, v.residual_blocks, v.num_codes,
                                 v.code_dim, v.beta, v.ema_decay, name="vqvae_backbone")
        return VQVAE(backbone, preprocessor, edge_weight=v.edge_weight, name="vqvae")

    def pipeline(self, config, examples, training, shard=None, repeat=False):
        """Batches of raw `{"images"}`; `data.augment` applies here (what is reconstructed may be any image)."""
        augmenter = ImageAugmenter(config.data.augment)
        augment = (lambda batch, seed: {"images": augmenter(batch["images"], seed)}) if training and augmenter.active else None
        return build_pipeline(examples.map(lambda e: {"images": e["image"]}), per_worker_batch(config.data.batch_size, shard),
                              training=training, batch_fn=augment, cache=config.data.cache,
                              shuffle_buffer=config.data.shuffle_buffer, seed=config.train.seed, shard=shard, repeat=repeat)

    def evaluate(self, task, config, split, args=None):
        metrics = reconstruction_metrics(task, self.load_split(config, split, _checks(config)))
        return {**metrics, "examples": metrics["images"]}


class JudgeStage(_ImageStage):
    name, description = "generate_judge", "the scene reader that judges prompt fidelity"
    task_class = SceneAttributeClassifier

    def words(self, config):
        words = object_words(config.data.source)
        if words is None:
            raise TfmmError(f"data.source {config.data.source}: prompt fidelity needs the objects of each image "
                            "(the built-in shapes)")
        return words

    def load_split(self, config, split, checks):
        examples = super().load_split(config, split, checks)
        if split == "train" and config.data.source == "shapes":
            heldout = super().load_split(config, "heldout", checks)
            examples = examples.concatenate(heldout.take(heldout_split_point(config, checks)))
        return examples

    def build_task(self, config, preprocessor):
        colours, shapes = self.words(config)
        # Three stages of two convs: a 4×4 grid of regions at 32 px (the registry's `small` cnn leaves 2×2, too
        # coarse to tell which object is where: a judge on it read only 38% of real test scenes right).
        encoder = CNNImageEncoder(image_size=config.data.image_size, filters=(32, 64, 128), convs_per_stage=2,
                                  normalization="batch")
        return SceneAttributeClassifier(encoder, preprocessor, len(colours), len(shapes), name="judge")

    def pipeline(self, config, examples, training, shard=None, repeat=False):
        colours, shapes = self.words(config)
        rows = [(e["image"], scene_labels(e["objects"].decode(), colours, shapes)) for e in examples.as_numpy_iterator()]
        labels = {head: np.array([r[1][head] for r in rows], np.int32) for head in rows[0][1]}
        labelled = tf.data.Dataset.from_tensor_slices(({"images": np.stack([r[0] for r in rows])}, labels))
        return build_pipeline(labelled, per_worker_batch(config.data.batch_size, shard), training=training, cache=False,
                              seed=config.train.seed, shard=shard, repeat=repeat)

    def evaluate(self, task, config, split, args=None):
        rows = list(self.load_split(config, split, _checks(config)).as_numpy_iterator())
        share, _ = judge_scenes(task, np.stack([r["image"] for r in rows]), [r["objects"].decode() for r in rows],
                                *self.words(config))
        return {"scene_accuracy": share, "images": len(rows), "examples": len(rows)}


def _checks(config):
    return DataChecks(strict=config.data.strict)
