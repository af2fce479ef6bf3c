"""Shared checks for layers and tasks, used by every test module (as keras-hub's TestCase is), and
smoke-sized tasks and configs to run them on."""

from tfmm.testing import tiny_tasks
from tfmm.testing.checks import (
    TrainedApp,
    assert_keras_round_trip,
    assert_layer_round_trip,
    assert_picture,
    record_calls,
    tiny_retrieval_config,
    train_app,
)
from tfmm.testing.task_checks import check_fit, check_in_fresh_process, check_keras_round_trip, raw_dataset

__all__ = ["TrainedApp", "train_app", "assert_picture",
           "assert_keras_round_trip", "assert_layer_round_trip", "check_fit", "check_in_fresh_process",
           "check_keras_round_trip", "raw_dataset", "record_calls", "tiny_retrieval_config", "tiny_tasks"]
