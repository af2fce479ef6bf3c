"""What every app's run directory holds, and loading it back: `model.keras`, `vocabulary.txt`, `config.toml`."""

from pathlib import Path

import keras
import tensorflow as tf

from tfmm import cli
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


class TrainedRun:
    """A trained model with everything needed to use it: config, text preprocessor, run directory.
    Apps subclass it, naming their `task` and `config_class`."""

    task = None
    config_class = None

    def __init__(self, path, model, preprocessor, config):
        self.path, self.model, self.preprocessor, self.config = Path(path), model, preprocessor, config
        self._forward = tf.function(lambda inputs: self.model(inputs, training=False), reduce_retracing=True)

    @classmethod
    def load(cls, path, overrides=()):
        path, config, model, preprocessor = load_run(path, cls.task, cls.config_class, overrides)
        return cls(path, model, preprocessor, config)

    @classmethod
    def from_args(cls, args):
        """The run named by --model, else the latest under runs/<task>, with --set overrides."""
        return cls.load(args.model or cli.latest_run("runs", cls.task), args.set)

    def forward(self, inputs):
        """The model's outputs in inference mode, as NumPy arrays."""
        return {key: value.numpy() for key, value in self._forward(inputs).items()}
