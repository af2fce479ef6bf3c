import keras
import tensorflow as tf

from tfmm.models.labels import names_to_ids
from tfmm.models.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class VisualQuestionAnswererPreprocessor(Preprocessor):
    """Raw VQA examples → the answerer's tensors.

    `x`: `images` (batch, ...) as uint8 pixels or encoded bytes (clips: (batch, frames, ...)) and
    `questions` strings (batch,) or (batch, questions): the questions asked about each image.
    `y`: answers as strings of the same shape → ids into `answer_vocabulary`; `sample_weight`
    (0/1, same shape) marks real questions. The weight is 0 for padding and for answers outside the
    vocabulary. Returns `{"images", "token_ids", "padding_mask"}` with questions (batch, questions, L).
    """

    def __init__(self, tokenizer=None, image_converter=None, sequence_length=12, answer_vocabulary=(), **kwargs):
        super().__init__(tokenizer, image_converter, sequence_length, **kwargs)
        self.answer_vocabulary = list(answer_vocabulary)

    def call(self, x, y=None, sample_weight=None):
        questions = tf.convert_to_tensor(x["questions"], tf.string)
        if questions.shape.rank == 1:
            questions = questions[:, None]
        inputs = {"images": self.convert_images(x["images"]), **self.tokenize(questions)}
        if y is None:
            return inputs
        answers = tf.convert_to_tensor(y, tf.string)
        answers = answers[:, None] if answers.shape.rank == 1 else answers
        ids = names_to_ids(answers, self.answer_vocabulary)
        weights = tf.cast(ids >= 0, tf.float32)
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, tf.float32)
            weights *= sample_weight[:, None] if sample_weight.shape.rank == 1 else sample_weight
        return keras.utils.pack_x_y_sample_weight(inputs, tf.maximum(ids, 0), weights)

    def get_config(self):
        return {**super().get_config(), "answer_vocabulary": self.answer_vocabulary}
