"""Shared checks for layers and models, used by every test module (as keras-hub's TestCase is)."""

from tfmm.testing.checks import assert_keras_round_trip, assert_layer_round_trip, tiny_retrieval_config

__all__ = ["assert_keras_round_trip", "assert_layer_round_trip", "tiny_retrieval_config"]
