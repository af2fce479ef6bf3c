"""Callbacks beyond Keras' own: the best weights kept atomically, and early stopping, both resumable."""

import shutil

import keras
import tensorflow as tf

from tfmm.files import atomic_write


def atomic_save_weights(model, path):
    """Saves a `.weights.h5` file through a temporary name and a rename: a crash never leaves a partial file."""
    with atomic_write(path) as tmp:
        model.save_weights(tmp)


class BestSoFar(tf.Module):
    """What the best-model tracker and early stopping remember between epochs. Its variables go into
    the step backup with the model and the optimizer, so a resumed run remembers them too."""

    def __init__(self):
        super().__init__(name="best_so_far")
        self.best = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name="best")
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_epoch")
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")  # epochs since it improved


class KeepBest(keras.callbacks.Callback):
    """Keeps `path` (`.weights.h5`) as the best weights so far by `monitor` (or the last ones when it is
    not logged) and, with `patience`, stops after that many epochs without improvement.

    Unlike Keras' `ModelCheckpoint` + `EarlyStopping`, which start afresh at every `fit` call, the
    state lives in `state` (a `BestSoFar` the step backup holds), so a resumed run neither overwrites
    a better model with a worse one nor forgets how long it has waited. It must run before the
    backup at an epoch's end so that the backup holds the updated state.
    """

    def __init__(self, path, state, monitor="val_loss", patience=0, write=True):
        super().__init__()
        self.path, self.state, self.monitor, self.patience, self.write = path, state, monitor, patience, write

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or value < self.state.best.numpy():
            if value is not None:
                self.state.best.assign(float(value))
                self.state.best_epoch.assign(epoch)
            self.state.wait.assign(0)
            if self.write:
                atomic_save_weights(self.model, self.path)
            return
        self.state.wait.assign_add(1)
        if self.patience and self.state.wait.numpy() >= self.patience:
            self.model.stop_training = True
            print(f"early stopping: {self.monitor} has not improved for {self.patience} epoch(s) since epoch "
                  f"{int(self.state.best_epoch.numpy()) + 1} ({self.state.best.numpy():.4f})")


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
