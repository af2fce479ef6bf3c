"""Loading the TFDS datasets that tfmm generates (no download), built first where needed, under a file lock.

Without the lock two processes started at once on a fresh machine (two training runs, a run beside the tests) both
build the dataset and TFDS fails the slower one ("Cannot rename ... Destination ... already exists"); with it the
second waits and reads what the first built.
"""

from pathlib import Path

import tensorflow_datasets as tfds
from filelock import FileLock


def build_lock_path(builder):
    """The lock beside the data folder's root, hidden, one per dataset, config and version."""
    version_dir = Path(builder.data_dir)  # <root>/<name>/<config>/<version>
    name, config, version = version_dir.parts[-3:]
    return version_dir.parents[2] / f".{name}-{config}-{version}.lock"


def load_generated(name, split, data_dir=None, **as_dataset_kwargs):
    """`tfds.load(name, split=split, data_dir=data_dir)`, building the dataset once even when processes race."""
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        lock_path = build_lock_path(builder)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(lock_path):
            builder = tfds.builder(name, data_dir=data_dir)  # sees what another process built while we waited
            if not builder.is_prepared():
                builder.download_and_prepare()
    return builder.as_dataset(split=split, **as_dataset_kwargs)
