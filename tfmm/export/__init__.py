"""Exports: SavedModels in TF Serving's layout (raw inputs), TFLite with built-in ops only."""

from tfmm.export.saved_model import check_model_name, latest_version_dir, versions, write_version
from tfmm.export.tflite import QUANTIZATIONS, TFLiteRunner, check_builtin_ops, convert_saved_model, op_names

__all__ = [
    "QUANTIZATIONS", "TFLiteRunner", "check_builtin_ops", "check_model_name", "convert_saved_model",
    "latest_version_dir", "op_names", "versions", "write_version",
]
