import keras
import tensorflow as tf

from tfmm.models.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class ImageCaptionerPreprocessor(Preprocessor):
    """Raw captioned images → teacher-forcing tensors, as keras-hub's causal-LM preprocessors do.

    `x`: `images` (uint8 pixels or encoded bytes) and `captions` strings (one per image). Returns
    `({"images", "token_ids"}, next token ids, weights)`: the caption from its start token without its
    last token, the tokens that follow each position, and 0 on padding. Without `captions`, only the
    converted `images` (for decoding).
    """

    def call(self, x, y=None, sample_weight=None):
        images = self.convert_images(x["images"])
        if "captions" not in x:
            return {"images": images}
        tokens = self.tokenize(x["captions"])
        ids, mask = tokens["token_ids"], tokens["padding_mask"]
        return keras.utils.pack_x_y_sample_weight({"images": images, "token_ids": ids[:, :-1]}, ids[:, 1:],
                                                  tf.cast(mask[:, 1:], tf.float32))
