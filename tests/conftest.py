"""Shared, session-wide fixtures: the tiny shapes dataset, one trained tiny model, one export."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import tfmm  # noqa: E402,F401


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """`tfmm_shapes/tiny` built once for the whole session."""
    from tfmm.data import shapes_builder

    path = tmp_path_factory.mktemp("tfds")
    shapes_builder.load("train", config="tiny", data_dir=str(path))
    return path


@pytest.fixture(scope="session")
def tiny_config(tfds_dir, tmp_path_factory):
    from tfmm.testing import tiny_retrieval_config

    return tiny_retrieval_config(tfds_dir, tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="session")
def trained_run(tiny_config):
    """One tiny retrieval model trained for a few epochs, shared by the export and app tests."""
    from tfmm.apps.retrieval import Retrieval
    from tfmm.testing import train_app

    return train_app(Retrieval(), tiny_config)


@pytest.fixture(scope="session")
def exported(trained_run):
    """The trained run exported once (SavedModel + TFLite in all quantizations)."""
    return trained_run.export()
