"""Built-in examples, so a first visitor can click through without files of their own: `shapes` scenes
(what retrieval, caption, classify and generate train on), easy-VQA test images with questions (what the
VQA app trains on), prompts, class names and the reports the classifier reads."""

import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from tfmm.data import easy_vqa, reports, shapes

SEED = 2026  # fixed: the same examples on every start
SCENES = 24  # the search tab's image collection


@dataclass
class Examples:
    folder: Path
    scene_images: list = field(default_factory=list)  # PNG paths
    scene_captions: list = field(default_factory=list)  # one caption per scene image
    scene_reports: list = field(default_factory=list)  # one report per scene image
    vqa: list = field(default_factory=list)  # (PNG path, question)
    prompts: tuple = ("a large red circle", "a small blue star", "a green square", "a yellow triangle")
    class_names: str = ", ".join(shapes.SHAPES)
    queries: tuple = ("a red circle", "a large blue star", "a green cross")


def _save(pixels, path):
    from PIL import Image

    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return str(path)


@cache
def examples(folder=None):
    """Writes the example images once per process (into `folder`, default a fresh temporary folder)."""
    folder = Path(folder or tempfile.mkdtemp(prefix="tfmm-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    found = Examples(folder)
    for index in range(SCENES):
        example = shapes.generate_example(SEED, "test", index, image_size=64)
        found.scene_images.append(_save(example["image"], folder / f"scene{index:02d}.png"))
        found.scene_captions.append(example["captions"][0])
        objects = list(zip(example["objects"]["colour"], example["objects"]["shape"]))
        found.scene_reports.append(reports.make_report(np.random.default_rng([SEED, index]), objects)[0])
    rows, _ = easy_vqa.read_directory(easy_vqa.package_directory("test"))
    for row in rows[:4]:
        copy = folder / f"vqa{row['image_id']}.png"  # beside the others: the page serves files from this folder only
        shutil.copyfile(row["image_path"], copy)
        found.vqa.append((str(copy), row["questions"][0]))
    return found

