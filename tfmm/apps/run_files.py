"""What every app's run directory holds, and loading it back: `model.keras`, `vocabulary.txt`, `config.toml`."""

from pathlib import Path

import keras

from tfmm.config import load_config
from tfmm.errors import TfmmError
from tfmm.text import TextPreprocessor, load_vocabulary

RUN_FILES = ("model.keras", "vocabulary.txt", "config.toml")


def load_run(path, task, config_cls, overrides=()):
    """(run directory, resolved config, model, text preprocessor) of a trained run; `path` may name a file in it."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    for name in RUN_FILES:
        if not (path / name).is_file():
            raise TfmmError(f"{path} is not a trained {task} run: {name} is missing")
    config = load_config(config_cls, path / "config.toml", overrides)
    model = keras.saving.load_model(path / "model.keras", compile=False, safe_mode=True)
    preprocessor = TextPreprocessor(load_vocabulary(path / "vocabulary.txt"), config.model.sequence_length)
    return path, config, model, preprocessor
