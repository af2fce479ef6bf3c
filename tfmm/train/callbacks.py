"""Callbacks beyond Keras' own: atomic best-weights checkpoints."""

import shutil

import keras

from tfmm.files import atomic_write


def atomic_save_weights(model, path):
    """Saves a `.weights.h5` file through a temporary name and a rename: a crash never leaves a partial file."""
    with atomic_write(path) as tmp:
        model.save_weights(tmp)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Keeps `path` (`.weights.h5`) as the best weights so far by `monitor` (or the last ones when it is
    not logged); the run's preset is written from them when training ends."""

    def __init__(self, path, monitor="val_loss", write=True):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.write = write
        self.best = float("inf")

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or value < self.best:
            self.best = value if value is not None else self.best
            if self.write:
                atomic_save_weights(self.model, self.path)


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
