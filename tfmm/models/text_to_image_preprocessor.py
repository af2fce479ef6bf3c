import keras
import tensorflow as tf

from tfmm.models.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class TextToImagePreprocessor(Preprocessor):
    """Prompts (and image token grids, or images) → the text-to-image models' tensors.

    Token transformer: `x` is `prompts` strings and, for training, `image_ids` (batch, tokens) from the
    VQ-VAE; returns `({"text_ids", "image_ids"}, image_ids)`: the model predicts each image token from the
    prompt and the tokens before it. The `image_converter` turns raw images into the VQ-VAE's input (editing).
    GAN: `x` is `prompts` and raw `images`; returns `{"text_ids", "padding_mask", "images"}` (0..1).
    """

    def call(self, x, y=None, sample_weight=None):
        tokens = self.tokenize(x["prompts"])
        inputs = {"text_ids": tokens["token_ids"]}
        if "images" in x:
            return {**inputs, "padding_mask": tokens["padding_mask"], "images": self.convert_images(x["images"])}
        if "image_ids" not in x:
            return inputs
        inputs["image_ids"] = tf.convert_to_tensor(x["image_ids"], tf.int32)
        return keras.utils.pack_x_y_sample_weight(inputs, inputs["image_ids"], sample_weight)

    def unknown_prompts(self, prompts):
        """Indices of prompts with no word the model knows (their images follow no text)."""
        known = self.known_words(self.tokenize_numpy(list(prompts))["token_ids"]).numpy()
        return [i for i, count in enumerate(known) if count == 0]
