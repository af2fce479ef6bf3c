import keras

from tfmm.models.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class ContrastiveRetrieverPreprocessor(Preprocessor):
    """Raw image–text pairs → the dual encoder's tensors.

    `x`: `images` (uint8 pixels or encoded bytes) and `text` strings, row i of each a positive pair;
    either may be left out (embedding one side). Returns `images` float 0..1 and `token_ids` /
    `padding_mask`. There are no targets: every other row is a negative.
    """

    def call(self, x, y=None, sample_weight=None):
        inputs = {}
        if "images" in x:
            inputs["images"] = self.convert_images(x["images"])
        if "text" in x:
            inputs.update(self.tokenize(x["text"]))
        return keras.utils.pack_x_y_sample_weight(inputs, y, sample_weight)
