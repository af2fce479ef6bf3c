import keras

from tfmm.models.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class ImagePreprocessor(Preprocessor):
    """Raw images → float 0..1 for image-only tasks (the VQ-VAE, the scene judge); targets pass through.

    `x`: `{"images": uint8 pixels or encoded bytes}`.
    """

    def call(self, x, y=None, sample_weight=None):
        return keras.utils.pack_x_y_sample_weight({"images": self.convert_images(x["images"])}, y, sample_weight)
