"""`model.fit` with the suite's optimizer, schedule and callbacks."""

import os
import sys
import tempfile
from pathlib import Path

import keras

from tfmm.train.backup import StepBackup, checkpoint_manager, global_step, restore_latest, resume_plan
from tfmm.train.callbacks import BestSoFar, KeepBest, remove_tree
from tfmm.train.optimizers import LayerwiseAdamW
from tfmm.train.schedules import WarmupCosine
from tfmm.train.strategy import is_chief

BEST_WEIGHTS = "best.weights.h5"
NO_WEIGHT_DECAY = ["bias", "gamma", "beta", "log_scale", "embeddings", "position_embedding", "class_token"]


def make_optimizer(train, total_steps, multipliers=None):
    """AdamW with warm-up + cosine decay and global-norm clipping; no decay on biases, norms, embeddings.

    `multipliers` ({variable path: factor}) scales the learning rate of some variables (pretrained encoders).
    """
    schedule = WarmupCosine(train.learning_rate, total_steps, warmup_steps=int(train.warmup_fraction * total_steps))
    options = dict(learning_rate=schedule, beta_1=train.adam_beta_1, weight_decay=train.weight_decay,
                   global_clipnorm=train.clipnorm or None,
                   gradient_accumulation_steps=train.accumulation_steps if train.accumulation_steps > 1 else None)
    optimizer = LayerwiseAdamW(multipliers, **options) if multipliers else keras.optimizers.AdamW(**options)
    optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer


def fit(model, train_stream, validation_data, train, run_dir, steps_per_epoch, worker_index=0, num_workers=1,
        extra_callbacks=()):
    """Trains `train.epochs` epochs of `steps_per_epoch` steps from `train_stream()` (a factory of
    endless datasets whose n-th batch is the same in every one), with a step-level backup that
    resumes an interrupted run in the same `run_dir` exactly where it stopped, the best
    weights kept atomically (`best.weights.h5`), early stopping, TensorBoard and CSV logs, and a loss plot.

    Only the chief writes to `run_dir`; other workers write logs to a temporary directory
    that is removed afterwards, and their backups under `run_dir/backup/worker-<i>`.
    """
    chief = is_chief()
    out = Path(run_dir) if chief else Path(tempfile.mkdtemp(prefix="tfmm-worker-"))
    out.mkdir(parents=True, exist_ok=True)
    backups = [Path(run_dir) / "backup" / ("chief" if i == 0 else f"worker-{i}") for i in range(num_workers)]
    backup_dir = backups[worker_index]
    best_so_far = BestSoFar()
    checkpoint, manager = checkpoint_manager(model, backup_dir, best_so_far)
    step = restore_latest(checkpoint, manager, [b for b in backups if b != backup_dir])
    if step:
        print(f"resuming from the backup at step {step} ({backup_dir})")
    monitor = "val_loss" if validation_data is not None else "loss"
    callbacks = [  # KeepBest first: the backup at an epoch's end must hold the state it updates
        KeepBest(out / BEST_WEIGHTS, best_so_far, monitor, train.early_stopping_patience, write=chief),
        StepBackup(manager, train.backup_every_steps),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=bool(step)),
        keras.callbacks.TensorBoard(str(out / "logs"), update_freq="epoch", write_graph=False),
        *extra_callbacks,
    ]
    history = {}
    try:
        for initial_epoch, epochs, steps, skip in resume_plan(step, steps_per_epoch, train.epochs):
            result = model.fit(
                train_stream().skip(skip), validation_data=validation_data, initial_epoch=initial_epoch, epochs=epochs,
                steps_per_epoch=steps, callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2,
                shuffle=False,  # tf.data already shuffles; Keras warns on every fit otherwise
            )
            for key, values in result.history.items():
                history.setdefault(key, []).extend(values)
            if model.stop_training:
                break
    finally:
        if not chief:
            remove_tree(out)
    if chief:
        model.save_weights(str(out / "final.weights.h5"))
        if history:
            from tfmm.visualization import plot_history

            plot_history(history, out / "loss.png")
    print(f"finished at step {global_step(model.optimizer)}")
    # The run finished: nothing to resume. Each worker clears its own backups (the chief clearing
    # everyone's raced with a slower worker still writing its last one), then the emptied folder goes.
    remove_tree(backup_dir)
    try:
        os.rmdir(backup_dir.parent)
    except OSError:  # another worker's backups are still there; the last one out removes the folder
        pass
    return history
