"""`model.fit` with the suite's optimizer, schedule and callbacks."""

import sys
import tempfile
from pathlib import Path

import keras

from tfmm.train.callbacks import AtomicCheckpoint, remove_tree
from tfmm.train.schedules import WarmupCosine
from tfmm.train.strategy import is_chief

NO_WEIGHT_DECAY = ["bias", "gamma", "beta", "log_scale", "embeddings", "position_embedding", "class_token"]


def make_optimizer(train, total_steps):
    """AdamW with warm-up + cosine decay and global-norm clipping; no decay on biases, norms, embeddings."""
    schedule = WarmupCosine(train.learning_rate, total_steps, warmup_steps=int(train.warmup_fraction * total_steps))
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=train.weight_decay, global_clipnorm=train.clipnorm or None
    )
    optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer


def fit(model, train_data, validation_data, train, run_dir, steps_per_epoch=None, extra_callbacks=()):
    """Trains with BackupAndRestore (resume after a crash), best-model checkpoint, early stopping,
    TensorBoard and CSV logs. Only the chief writes to `run_dir`; other workers write to a
    temporary directory that is removed afterwards.
    """
    chief = is_chief()
    out = Path(run_dir) if chief else Path(tempfile.mkdtemp(prefix="tfmm-worker-"))
    out.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(
            str(out / "backup"), save_freq=train.backup_every_steps or "epoch", delete_checkpoint=True
        ),
        AtomicCheckpoint(out / "model.keras", monitor="val_loss" if validation_data is not None else "loss"),
        keras.callbacks.CSVLogger(str(out / "history.csv")),
        keras.callbacks.TensorBoard(str(out / "logs"), update_freq="epoch", write_graph=False),
    ]
    if train.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=train.early_stopping_patience, restore_best_weights=True
        ))
    callbacks.extend(extra_callbacks)
    try:
        history = model.fit(
            train_data, validation_data=validation_data, epochs=train.epochs, steps_per_epoch=steps_per_epoch,
            callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2,
        )
    finally:
        if not chief:
            remove_tree(out)
    if chief:
        plot_history(history.history, out / "loss.png")
    return history


def plot_history(history, path):
    """Training curves as a PNG beside the logs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for key, values in history.items():
        if key.endswith("loss"):
            axis.plot(range(1, len(values) + 1), values, label=key)
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
