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

import keras
import tensorflow as tf


class StepBackup(keras.callbacks.Callback):
    def __init__(self, manager, every_steps=0):
        super().__init__()
        self.manager, self.every_steps = manager, every_steps

    def _save(self):
        self.manager.save(checkpoint_number=int(self.model.optimizer.iterations.numpy()))

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and int(self.model.optimizer.iterations.numpy()) % self.every_steps == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._save()


def checkpoint_manager(model, directory):
    if not model.optimizer.built:
        with model.distribute_strategy.scope():  # optimizer slots are mirrored like the weights
            model.optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    return checkpoint, tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=2)


def restore_latest(checkpoint, manager):
    """Restores the newest complete checkpoint; returns the global step it holds (0 if none)."""
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    return int(checkpoint.optimizer.iterations.numpy())


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
