"""What a resumed run must remember and refuse: the best model and early stopping survive a crash;
a different config or a backup of another model is refused with one line naming what differs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmm.apps.retrieval import RetrievalConfig
from tfmm.config import TrainConfig, load_config
from tfmm.errors import TfmmError
from tfmm.train.backup import checkpoint_manager, global_step, restore_latest
from tfmm.train.fit import BEST_WEIGHTS, fit
from tfmm.train.session import prepare_run_dir

X = np.linspace(0.5, 2.0, 16, dtype=np.float32)[:, None]


def _model():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model


class Crash(keras.callbacks.Callback):
    def __init__(self, at_step):
        super().__init__()
        self.at_step = at_step

    def on_train_batch_end(self, batch, logs=None):
        if global_step(self.model.optimizer) == self.at_step:
            raise RuntimeError("simulated crash")


def _run(run_dir, crash_at=None):
    """Training pulls w towards 1 while validation wants 0: val_loss is best after epoch 1 and worse
    every epoch after, so patience 2 stops the run after epoch 3 (step 12 of 4 steps per epoch)."""
    train = TrainConfig(epochs=5, backup_every_steps=1, early_stopping_patience=2)
    stream = lambda: tf.data.Dataset.from_tensor_slices((X, X)).batch(4).repeat()  # noqa: E731
    validation = tf.data.Dataset.from_tensor_slices((X, 0 * X)).batch(16)
    model = _model()
    fit(model, stream, validation, train, run_dir, steps_per_epoch=4, extra_callbacks=[Crash(crash_at)] if crash_at else [])
    return int(model.optimizer.iterations.numpy())


def _weight(path):
    model = _model()
    model.load_weights(path)
    return float(model.layers[0].kernel.numpy()[0, 0])


def test_best_model_and_early_stopping_survive_a_crash(tmp_path):
    assert _run(tmp_path / "whole") == 12
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "crashed", crash_at=10)  # in epoch 3, after epoch 2 was worse than epoch 1
    assert _run(tmp_path / "crashed") == 12  # a fresh tracker would have run to step 20
    best = _weight(tmp_path / "whole" / BEST_WEIGHTS)
    assert best == _weight(tmp_path / "crashed" / BEST_WEIGHTS)
    assert 0 < best < _weight(tmp_path / "whole" / "final.weights.h5")  # the epoch-1 weights, not the last ones


def test_a_backup_of_another_model_is_a_one_line_error(tmp_path):
    model = _model()
    checkpoint, manager = checkpoint_manager(model, tmp_path)
    manager.save(checkpoint_number=3)
    wider = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, use_bias=False)])
    wider.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    checkpoint, manager = checkpoint_manager(wider, tmp_path)
    with pytest.raises(TfmmError, match=r"ckpt-3: the backup does not match this model") as error:
        restore_latest(checkpoint, manager)
    assert "\n" not in str(error.value)


def test_resuming_with_another_config_is_refused_unless_forced(tmp_path):
    config = load_config(RetrievalConfig, overrides=["train.epochs=3"])
    prepare_run_dir(config, tmp_path)
    written = (tmp_path / "config.toml").read_text()
    prepare_run_dir(load_config(RetrievalConfig, overrides=["train.epochs=3"]), tmp_path)  # the same: fine
    changed = load_config(RetrievalConfig, overrides=["train.epochs=5", "data.batch_size=8"])
    with pytest.raises(TfmmError, match=r"data\.batch_size: \d+ → 8; train\.epochs: 3 → 5\).*--force"):
        prepare_run_dir(changed, tmp_path)
    assert (tmp_path / "config.toml").read_text() == written  # refused: untouched
    prepare_run_dir(changed, tmp_path, force=True)
    assert load_config(RetrievalConfig, tmp_path / "config.toml").train.epochs == 5
    assert "train.epochs: 3 → 5" in (tmp_path / "config_changes.txt").read_text()


def test_gradient_accumulation_updates_every_n_steps_and_resumes_mid_accumulation(tmp_path):
    train = TrainConfig(epochs=2, backup_every_steps=1, accumulation_steps=2, learning_rate=0.1, warmup_fraction=0.0)
    stream = lambda: tf.data.Dataset.from_tensor_slices((X, X)).batch(4).repeat()  # noqa: E731
    from tfmm.train.fit import make_optimizer

    def run(run_dir, crash_at=None, watch=None):
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
        model.compile(optimizer=make_optimizer(train, total_steps=8), loss="mse")
        callbacks = [c for c in (Crash(crash_at) if crash_at else None, watch) if c]
        fit(model, stream, None, train, run_dir, steps_per_epoch=4, extra_callbacks=callbacks)
        return model

    class Watch(keras.callbacks.Callback):
        kernels = []

        def on_train_batch_end(self, batch, logs=None):
            self.kernels.append(float(self.model.layers[0].kernel.numpy()[0, 0]))

    whole = run(tmp_path / "whole", watch=Watch())
    kernels = Watch.kernels
    assert kernels[0] == 0.0 and kernels[1] != 0.0 and kernels[2] == kernels[1] and kernels[3] != kernels[2]  # every 2nd
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "crashed", crash_at=5)  # half-way through an accumulation
    resumed = run(tmp_path / "crashed")
    assert resumed.layers[0].kernel.numpy()[0, 0] == whole.layers[0].kernel.numpy()[0, 0]
    assert (tmp_path / "crashed" / "final.weights.h5").is_file()
