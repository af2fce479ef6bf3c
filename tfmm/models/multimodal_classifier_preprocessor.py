import keras
import tensorflow as tf

from tfmm.data.mixing import MIX_PARTNER, MIX_WEIGHT
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
        labels = {t: tf.maximum(i, 0) for t, i in ids.items()}
        if MIX_WEIGHT in y:  # a MixUp/CutMix batch (tfmm.data.mixing): the partners' labels and λ travel along
            partner = {task: names_to_ids(y[MIX_PARTNER][task], names) for task, names in self.tasks.items()}
            labels[MIX_PARTNER] = {t: tf.maximum(i, 0) for t, i in partner.items()}
            labels[MIX_WEIGHT] = y[MIX_WEIGHT]
            weights[MIX_PARTNER] = {t: tf.cast(i >= 0, tf.float32) for t, i in partner.items()}
        return keras.utils.pack_x_y_sample_weight(inputs, labels, weights)

    def get_config(self):
        return {**super().get_config(), "tasks": self.tasks}
