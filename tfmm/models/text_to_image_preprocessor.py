import keras
import tensorflow as tf

from tfmm.models.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class TextToImagePreprocessor(Preprocessor):
    """Prompts (and image token grids) → the token transformer's tensors.

    `x`: `prompts` strings and, for training, `image_ids` (batch, tokens) from the VQ-VAE. Returns
    `({"text_ids", "image_ids"}, image_ids)`: the model predicts each image token from the prompt and
    the tokens before it. The `image_converter` turns raw images into the VQ-VAE's input (editing).
    """

    def call(self, x, y=None, sample_weight=None):
        inputs = {"text_ids": self.tokenize(x["prompts"])["token_ids"]}
        if "image_ids" not in x:
            return inputs
        inputs["image_ids"] = tf.convert_to_tensor(x["image_ids"], tf.int32)
        return keras.utils.pack_x_y_sample_weight(inputs, inputs["image_ids"], sample_weight)
