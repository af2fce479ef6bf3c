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


# The longest modules start first, so the two workers (`--dist loadfile`) do not end with one of them alone on a
# long module (measured with `pytest --durations=30`).
LONG_MODULES = ("tests/tools/", "tests/demo/", "tests/apps/test_caption_app.py", "tests/train/test_resume.py",
                "tests/train/test_multi_worker.py", "tests/models/test_every_task.py", "tests/apps/")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return next((i for i, prefix in enumerate(LONG_MODULES) if path.startswith(prefix)), len(LONG_MODULES))

    items.sort(key=rank)  # stable: the order inside a module and among the rest stays
