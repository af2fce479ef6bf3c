"""Step-level backup and resume: model, optimizer and step, restored exactly after a crash.

Keras' `BackupAndRestore` saves weights only and resumes at the start of the interrupted
epoch, so a resumed run repeats steps and restarts the optimizer's moments. Here a
`tf.train.Checkpoint` of the model *and* the optimizer (whose `iterations` is the global
step) is written every `every_steps` steps by a `tf.train.CheckpointManager`, which
updates its index only after a checkpoint is fully written: a checkpoint that was being
written when the process died is never taken as the latest. `resume_plan` then says
where to continue, and the training stream (deterministic per global step) is skipped
to that step, so the resumed run takes the same steps on the same batches.
"""

from pathlib import Path

import keras
import tensorflow as tf

from tfmm.errors import TfmmError


def global_step(optimizer):
    """Training steps (batches) taken. Under gradient accumulation Keras' `iterations` counts updates, a
    fraction of the steps; its `_iterations` counts every step, which is what backups and resuming need."""
    steps = optimizer._iterations if optimizer.gradient_accumulation_steps else optimizer.iterations
    return int(steps.numpy())


class StepBackup(keras.callbacks.Callback):
    def __init__(self, manager, every_steps=0):
        super().__init__()
        self.manager, self.every_steps = manager, every_steps

    def _save(self):
        self.manager.save(checkpoint_number=global_step(self.model.optimizer))

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and global_step(self.model.optimizer) % self.every_steps == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._save()


def checkpoint_manager(model, directory, best_so_far=None):
    """A checkpoint of the model, its optimizer and (optionally) the best-model/early-stopping state."""
    if not model.optimizer.built:
        with model.distribute_strategy.scope():  # optimizer slots are mirrored like the weights
            model.optimizer.build(model.trainable_variables)
    extra = {"best_so_far": best_so_far} if best_so_far is not None else {}
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, **extra)
    return checkpoint, tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=2)


def _steps(directory):
    """Steps of the complete checkpoints in a backup directory (an index file is written last)."""
    return {int(p.name[len("ckpt-"):-len(".index")]) for p in Path(directory).glob("ckpt-*.index")}


def restore_latest(checkpoint, manager, peer_directories=()):
    """Restores the newest complete checkpoint; returns the global step it holds (0 if none).

    With several workers, each backs up to its own directory and a crash can leave one
    worker a checkpoint ahead of another; `peer_directories` (the other workers' backup
    directories, on storage they share) make every worker restore the newest step that
    all of them have, so the cluster resumes in step.
    """
    steps = _steps(manager.directory)
    for peer in peer_directories:
        steps &= _steps(peer)
    if steps:
        path = Path(manager.directory) / f"ckpt-{max(steps)}"
        try:
            checkpoint.restore(str(path)).assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            reason = str(error).strip().splitlines()[0][:200]
            raise TfmmError(f"{path}: the backup does not match this model ({reason}); it was written by another "
                            "model or config: use a new --run-dir, or delete the backup folder to start over") from None
    return global_step(checkpoint.optimizer)


def resume_plan(step, steps_per_epoch, epochs):
    """[(initial_epoch, last_epoch_exclusive, steps_per_epoch, skip)] fit calls that finish the run from `step`."""
    epoch, offset = divmod(step, steps_per_epoch)
    plan = []
    if offset:
        plan.append((epoch, epoch + 1, steps_per_epoch - offset, step))
        epoch += 1
    if epoch < epochs:
        plan.append((epoch, epochs, steps_per_epoch, epoch * steps_per_epoch))
    return plan
