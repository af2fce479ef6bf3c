"""tfmm: multimodal (image + text) applications on TensorFlow/Keras.

train → evaluate → export (SavedModel for TF Serving, TFLite for LiteRT) → serve.
"""

import os

# Keras must run on TensorFlow: exports are TF SavedModels and the data pipeline is tf.data.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfmm.quiet import import_tensorflow  # noqa: E402  (before any module that imports TensorFlow)

import_tensorflow()

__version__ = "0.1.0"
