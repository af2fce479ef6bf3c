"""`tfmm_shapes` as a TensorFlow Datasets builder: `tfds.load("tfmm_shapes")` works offline.

Importing this module registers the builder. From the command line:
`tfds build --imports tfmm.data.shapes_builder tfmm_shapes` (or `--config tiny`).
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfmm.data import shapes
from tfmm.data.generated_datasets import load_generated


@dataclasses.dataclass
class ShapesConfig(tfds.core.BuilderConfig):
    image_size: int = 64
    num_train: int = 10000
    num_validation: int = 1000
    num_test: int = 1000
    num_heldout: int = 500
    seed: int = 0


class TfmmShapes(tfds.core.GeneratorBasedBuilder):
    """Procedural scenes of coloured shapes with captions, questions and labels."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        ShapesConfig(name="default", description="64×64, 10k training scenes"),
        ShapesConfig(name="small", description="64×64, 2k training scenes", num_train=2000, num_validation=200,
                     num_test=200, num_heldout=100),
        ShapesConfig(name="tiny", description="32×32 smoke-test size", image_size=32, num_train=96, num_validation=16,
                     num_test=32, num_heldout=16),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self):
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "id": tfds.features.Text(),
                    "image": tfds.features.Image(shape=(size, size, 3)),
                    "captions": tfds.features.Sequence(tfds.features.Text()),
                    "scene": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=[c.replace(" ", "_") for c in shapes.COMBINATIONS]),
                    "objects": tfds.features.Sequence(
                        {
                            "shape": tfds.features.ClassLabel(names=shapes.SHAPES),
                            "colour": tfds.features.ClassLabel(names=shapes.COLOURS),
                            "size": tfds.features.ClassLabel(names=shapes.SIZES),
                            "x": tfds.features.Scalar(dtype=np.float32),
                            "y": tfds.features.Scalar(dtype=np.float32),
                        }
                    ),
                    "questions": tfds.features.Sequence(
                        {"question": tfds.features.Text(), "answer": tfds.features.Text(), "type": tfds.features.Text()}
                    ),
                }
            ),
            homepage="https://github.com/tfmm/tfmm",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: every example is generated from the seed
        c = self.builder_config
        counts = {"train": c.num_train, "validation": c.num_validation, "test": c.num_test, "heldout": c.num_heldout}
        return {split: self._generate_examples(split, n) for split, n in counts.items()}

    def _generate_examples(self, split, count):
        c = self.builder_config
        for index in range(count):
            example = shapes.generate_example(c.seed, split, index, c.image_size)
            yield example["id"], example


def load(split, config="default", data_dir=None, **kwargs):
    """Loads a split, building the dataset first if needed (offline, a few seconds)."""
    return load_generated(f"tfmm_shapes/{config}", split, data_dir or None, **kwargs)
