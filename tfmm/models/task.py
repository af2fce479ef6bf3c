import keras
import tensorflow as tf


def _multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


class Task(keras.Model):
    """Base of tfmm's task models: makes `model.fit` work under `MultiWorkerMirroredStrategy`.

    Keras 3.15 (keras-team/keras#20585) fails there twice: `_maybe_symbolic_build`
    reduces the peeked input batch with `strategy.reduce`, which cannot take a dict of
    per-replica values, and the step logs (scalars) are reduced with `axis=0`. Here the
    build uses the local batch, and the logs travel as shape-[1] tensors that the
    cross-worker mean turns back into scalars. Other strategies take Keras' own path.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is None or not _multi_worker(self.distribute_strategy):
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            batch = next(batches)
            data_batch = tf.nest.map_structure(lambda v: self.distribute_strategy.experimental_local_results(v)[0], batch)
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def _with_vector_logs(self, logs):
        if not _multi_worker(self.distribute_strategy):
            return logs
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}

    def train_step(self, data):
        return self._with_vector_logs(super().train_step(data))

    def test_step(self, data):
        return self._with_vector_logs(super().test_step(data))
