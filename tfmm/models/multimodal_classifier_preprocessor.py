import keras
import tensorflow as tf

from tfmm.models.labels import names_to_ids
from tfmm.models.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class MultimodalClassifierPreprocessor(Preprocessor):
    """Raw (image, text) examples → the classifier's tensors.

    `x`: `images` (uint8 pixels or encoded bytes) and `text` strings; `y`: {task: class name} →
    {task: id into `tasks[task]`}, with `sample_weight` {task: 0/1}: 0 for a label the task does not
    know (it is skipped by the loss and the metrics).
    """

    def __init__(self, tokenizer=None, image_converter=None, sequence_length=40, tasks=None, **kwargs):
        super().__init__(tokenizer, image_converter, sequence_length, **kwargs)
        self.tasks = {task: list(names) for task, names in (tasks or {}).items()}

    def call(self, x, y=None, sample_weight=None):
        inputs = {"images": self.convert_images(x["images"]), **self.tokenize(x["text"])}
        if y is None:
            return inputs
        ids = {task: names_to_ids(y[task], names) for task, names in self.tasks.items()}
        weights = {task: tf.cast(ids[task] >= 0, tf.float32) for task in self.tasks}
        return keras.utils.pack_x_y_sample_weight(inputs, {t: tf.maximum(i, 0) for t, i in ids.items()}, weights)

    def get_config(self):
        return {**super().get_config(), "tasks": self.tasks}
