"""`tfmm_shapes_referring` as a TensorFlow Datasets builder: `shapes` scenes, each with the referring expressions
`tfmm.data.referring.PER_SCENE` lists (two attribute ones, one of every other kind it allows; training scenes
`TRAINING_PER_SCENE`, with a second relation) and the mask each names, and maps of the shape and the colour under
each pixel (`shape_map`, `colour_map`). Offline, like `tfmm_shapes`, and its images are `tfmm_shapes`' images of
the same split and index.

Splits: `train`, `validation`, `test`, `heldout` (scenes of the colour–shape combinations training never shows)
and `phrasing` (the test scenes asked in the held-out phrasings).
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfmm.data import shapes
from tfmm.data.generated_datasets import load_generated
from tfmm.data.referring import KINDS, PER_SCENE, TRAINING_PER_SCENE, class_maps, referring_examples

SCENE_SPLITS = {"train": "train", "validation": "validation", "test": "test", "heldout": "heldout", "phrasing": "test"}


@dataclasses.dataclass
class ReferringConfig(tfds.core.BuilderConfig):
    image_size: int = 64
    num_train: int = 6000  # scenes; each gives 4–5 expressions
    num_validation: int = 500
    num_test: int = 500
    num_heldout: int = 300
    seed: int = 0


class TfmmShapesReferring(tfds.core.GeneratorBasedBuilder):
    """Referring expressions on procedural shapes scenes, with their masks."""

    VERSION = tfds.core.Version("1.5.0")
    RELEASE_NOTES = {"1.0.0": "First release.",
                     "1.1.0": "Two attribute expressions per scene; no-target expressions in every attribute form.",
                     "1.2.0": "Fourteen single-object and twelve several-object training phrasings (four and three before).",
                     "1.3.0": "shape_map: the shape under each pixel (0 background, 1 + its index in shapes.SHAPES).",
                     "1.4.0": "colour_map: the colour under each pixel. Half the no-target expressions confusable where the "
                              "scene allows (each word fits some object, none fits all); none names a held-out colour–shape "
                              "combination.",
                     "1.5.0": "Training scenes try two relation expressions (one before); the other splits are as in 1.4.0."}
    BUILDER_CONFIGS = [
        ReferringConfig(name="default", description="64×64, 6k training scenes"),
        ReferringConfig(name="small", description="64×64, 1.5k training scenes", num_train=1500, num_validation=150,
                        num_test=150, num_heldout=100),
        ReferringConfig(name="tiny", description="32×32 smoke-test size", image_size=32, num_train=64,
                        num_validation=16, num_test=16, num_heldout=16),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self):
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "image": tfds.features.Image(shape=(size, size, 3)),
                "mask": tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
                "shape_map": tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
                "colour_map": tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
                "text": tfds.features.Text(),
                "kind": tfds.features.ClassLabel(names=KINDS),
                "scene": tfds.features.Text(),
            }),
            homepage="https://github.com/tfmm/tfmm",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # generated from the seed
        c = self.builder_config
        counts = {"train": c.num_train, "validation": c.num_validation, "test": c.num_test, "heldout": c.num_heldout,
                  "phrasing": c.num_test}
        return {split: self._generate_examples(split, n) for split, n in counts.items()}

    def _generate_examples(self, split, count):
        c = self.builder_config
        scene_split = SCENE_SPLITS[split]
        for index in range(count):
            rng = np.random.default_rng([c.seed, shapes.SPLITS.index(scene_split), index])
            scene = shapes.sample_scene(rng, c.image_size, scene_split)  # as shapes.generate_example draws them
            image = shapes.render(scene, c.image_size, rng)
            maps = class_maps(scene, c.image_size)
            phrasing = "heldout" if split == "phrasing" else "train"
            kinds = TRAINING_PER_SCENE if split == "train" else PER_SCENE
            for number, example in enumerate(referring_examples(scene, c.image_size, rng, kinds, phrasing)):
                key = f"{split}-{index:06d}-{number}"
                yield key, {"id": key, "image": image, "mask": example["mask"], **maps, "text": example["text"],
                            "kind": example["kind"], "scene": scene.key}


def load(split, config="default", data_dir=None, **kwargs):
    """Loads a split, building the dataset first if needed (offline)."""
    return load_generated(f"tfmm_shapes_referring/{config}", split, data_dir or None, **kwargs)
