import inspect

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfmm.errors import TfmmError

# `Task` overrides these private `keras.Model` methods (see its docstring). They are not public API,
# so the package pins Keras to the minor version they were written against, and this check fails
# loudly at import if another Keras gets installed anyway.
KERAS_MINOR = "3.15"
_OVERRIDDEN = {"_maybe_symbolic_build": ["self", "iterator", "data_batch"], "_symbolic_build": None}


def _check_keras():
    found = {}
    for name, parameters in _OVERRIDDEN.items():
        method = getattr(keras.Model, name, None)
        if method is None:
            found[name] = "missing"
        elif parameters and list(inspect.signature(method).parameters) != parameters:
            found[name] = f"has parameters {list(inspect.signature(method).parameters)}"
    if found or not keras.__version__.startswith(KERAS_MINOR + "."):
        raise RuntimeError(
            f"tfmm.models.Task overrides private methods of Keras {KERAS_MINOR} (multi-worker fixes); Keras "
            f"{keras.__version__} is installed" + (f" and {found}" if found else "")
            + f". Install keras~={KERAS_MINOR}.0 (pyproject.toml pins it) or port the overrides.")


_check_keras()


def _multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


class Task(keras_hub.models.Task):
    """Base of tfmm's tasks: a keras-hub `Task` (backbone + preprocessor, presets) whose methods take
    raw inputs, and whose `fit` works under `MultiWorkerMirroredStrategy`.

    `fit`, `evaluate` and `predict` on raw data run the preprocessor inside `tf.data`, as in keras-hub.
    The tasks' own methods (`answer`, `caption`, ...) take uint8 images (N, H, W, 3) or a list of
    encoded image bytes and strings, and run preprocessing and model in one `tf.function` per method,
    the same graph ops the export uses.

    Keras 3.15 (keras-team/keras#20585) fails twice under `MultiWorkerMirroredStrategy`:
    `_maybe_symbolic_build` reduces the peeked input batch with `strategy.reduce`, which cannot take a
    dict of per-replica values, and the step logs (scalars) are reduced with `axis=0`. Here the build
    uses the local batch, and the logs travel as shape-[1] tensors that the cross-worker mean turns
    back into scalars. Other strategies take Keras' own path.
    """

    def __init__(self, *args, **kwargs):
        kwargs["compile"] = False  # apps compile with the suite's optimizer and schedule
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_compiled_functions", {})

    # ------------------------------------------------------------------------------ multi-worker fixes

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

    # ------------------------------------------------------------------------------------ raw inputs

    def graph_function(self, name, function):
        """`function` as a `tf.function`, made once per task and name."""
        if name not in self._compiled_functions:
            self._compiled_functions[name] = tf.function(function, reduce_retracing=True)
        return self._compiled_functions[name]

    def run_in_batches(self, function, inputs, batch_size=64):
        """Calls `function(**batch)` on slices of `inputs` ({name: list or array}, equal lengths) and
        concatenates its outputs ({name: tensor}) as NumPy arrays."""
        count = len(next(iter(inputs.values())))
        outputs = []
        for start in range(0, count, batch_size):
            batch = {name: _to_tensor(value[start:start + batch_size]) for name, value in inputs.items()}
            outputs.append({key: value.numpy() for key, value in function(**batch).items()})
        return {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}


def check_images(images, count=None, what="images"):
    """A user's images as given to a task method: a uint8 array (N, H, W, 3) or a list of encoded image
    bytes. Returns them as an array or a list; anything else is an error naming what it got."""
    if isinstance(images, (list, tuple)) and images and all(isinstance(i, (bytes, bytearray)) for i in images):
        images = [bytes(i) for i in images]
    elif isinstance(images, (list, tuple)) and images and all(
            isinstance(i, (list, tuple)) and i and all(isinstance(f, (bytes, bytearray)) for f in i) for i in images):
        images = [[bytes(f) for f in clip] for clip in images]  # the encoded frames of clips
    elif isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim >= 4 and images.shape[-1] == 3:
        pass
    elif isinstance(images, np.ndarray):
        raise TfmmError(f"{what} must be uint8 pixels (N, H, W, 3) or a list of encoded image bytes; "
                        f"got a {images.dtype} array of shape {images.shape}")
    else:
        raise TfmmError(f"{what} must be a uint8 array (N, H, W, 3) or a list of encoded image bytes, "
                        f"got {type(images).__name__}")
    if len(images) == 0:
        raise TfmmError(f"no {what} given")
    if count is not None and len(images) != count:
        raise TfmmError(f"got {len(images)} {what} for {count} texts: give one text per image")
    return images


def _to_tensor(value):
    if isinstance(value, list) and value and isinstance(value[0], (bytes, str, list)):
        return tf.constant(value, tf.string)
    return tf.convert_to_tensor(value)
