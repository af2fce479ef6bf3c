"""Conversations for the assistant: the built-in instruction set, or the user's LLaVA JSON.

`data.source`:
- `shapes`: the built-in set (`tfmm.data.instructions`), written once as LLaVA JSON under
  `<data.data_dir or ~/tensorflow_datasets>/tfmm_instructions/<shapes_config>-<image_size>px-v<version>/` and
  read from there (a new version of the set is written beside the old); its splits are `train` (+ the easy-VQA
  training images' questions with `data.easy_vqa`), `validation`, `test`, `phrasing` (test scenes asked with
  held-out phrasings), `easy_vqa_test` (every official easy-VQA test question) and `captions` (one-turn
  "describe" conversations: the alignment stage's data).
- a folder with `train.json`, `validation.json`, `test.json` (LLaVA format; a missing validation/test file is
  carved out of train.json by the suite's hash of the image path);
- one LLaVA `.json` file: train, validation and test by that hash.
"""

import shutil
from pathlib import Path

import tensorflow as tf

from tfmm.data.conversations import conversation_dataset, read_conversations
from tfmm.data.instructions import INSTRUCTION_SET_VERSION, build_instruction_set
from tfmm.data.readers import SPLIT_FILES
from tfmm.data.sources import hash_split
from tfmm.errors import TfmmError

# Shapes conversations per split for each `data.shapes_config` (the easy-VQA splits are always whole).
BUILT_IN_SIZES = {"default": {"train": 12000, "validation": 300, "test": 600, "phrasing": 600, "captions": 3000},
                  "small": {"train": 1500, "validation": 100, "test": 200, "phrasing": 200, "captions": 800},
                  "tiny": {"train": 96, "validation": 16, "test": 24, "phrasing": 24, "captions": 48}}
BUILT_IN_SPLITS = ("train", "validation", "test", "phrasing", "captions", "easy_vqa_train", "easy_vqa_test")


def built_in_folder(data):
    root = Path(data.data_dir or "~/tensorflow_datasets").expanduser()
    return root / "tfmm_instructions" / f"{data.shapes_config}-{data.image_size}px-v{INSTRUCTION_SET_VERSION}"


def ensure_built_in(data):
    """The built-in set's folder, written on first use (into a scratch folder renamed at the end, so an interrupted
    write is never read)."""
    folder = built_in_folder(data)
    if not (folder / "done").is_file():
        scratch = folder.with_name(folder.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"writing the built-in instruction set to {folder} (once)")
        build_instruction_set(scratch, BUILT_IN_SPLITS, BUILT_IN_SIZES[data.shapes_config], image_size=data.image_size)
        (scratch / "done").write_text("")
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)
    return folder


def _hashed(conversations, split, fraction, folder=None):
    """The conversations the suite's hash of their image path puts in `split`; train also keeps those hashed to a
    split that `folder` has its own file for."""
    names = [n.decode() for n in hash_split(tf.constant([str(c.image) for c in conversations]), fraction).numpy()]
    own = {s for s in SPLIT_FILES if folder is not None and (folder / f"{s}.json").is_file()}
    return [c for c, name in zip(conversations, names) if name == split or (split == "train" and name in own)]


def load_conversations(data, split, checks):
    """The `Conversation`s of `split` (None: the whole file `data.source` names)."""
    source = data.source
    if source == "shapes":
        if split not in BUILT_IN_SPLITS:
            raise TfmmError(f"split {split!r}: the built-in instruction set has {', '.join(BUILT_IN_SPLITS)}")
        folder = ensure_built_in(data)
        conversations = read_conversations(folder / f"{split}.json", checks)
        if split == "train" and data.easy_vqa:
            conversations += read_conversations(folder / "easy_vqa_train.json", checks)
        return conversations
    path = Path(source)
    if path.is_file() and split is None:
        return read_conversations(path, checks)
    if path.is_file():
        return _hashed(read_conversations(path, checks), split, data.validation_fraction)
    if not path.is_dir():
        raise TfmmError(f"data.source {source}: no such file or folder (a LLaVA .json file, or a folder with "
                        f"{', '.join(s + '.json' for s in SPLIT_FILES)})")
    carved = split in SPLIT_FILES and (path / "train.json").is_file() and _needs_carving(path) and (
        split == "train" or not (path / f"{split}.json").is_file())
    if carved:  # validation and/or test come out of train.json by the hash; train keeps the rest
        return _hashed(read_conversations(path / "train.json", checks), split, data.validation_fraction, path)
    if (path / f"{split}.json").is_file():
        return read_conversations(path / f"{split}.json", checks)
    raise TfmmError(f"data.source {source}: no {split}.json (and no train.json to carve it from)")


def _needs_carving(folder):
    return any(not (folder / f"{s}.json").is_file() for s in ("validation", "test"))


def conversations_dataset(conversations, what, label_size=None):
    if not conversations:
        raise TfmmError(f"{what}: no usable conversations")
    return conversation_dataset(conversations, label_size)
