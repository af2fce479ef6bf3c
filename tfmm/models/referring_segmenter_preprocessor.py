import keras
import tensorflow as tf

from tfmm.models.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class ReferringSegmenterPreprocessor(Preprocessor):
    """Raw images and referring expressions → the segmenter's tensors; masks → per-pixel targets.

    `x`: `images` (uint8 pixels or encoded bytes) and `text`; `y` (training): masks (N, H, W), 0 = background,
    > 0 = named, at the images' own size. Masks are brought to the model's S×S as the images are (area
    resampling; a pixel is named when more than half of what it covers is), as float32 0/1.
    """

    def call(self, x, y=None, sample_weight=None):
        inputs = {"images": self.convert_images(x["images"]), **self.tokenize(x["text"])}
        if y is not None:
            y = self.convert_masks(y)
        return keras.utils.pack_x_y_sample_weight(inputs, y, sample_weight)

    def convert_masks(self, masks):
        masks = tf.cast(tf.convert_to_tensor(masks) > 0, tf.float32)[..., None]
        size = self.image_size
        if masks.shape[1] != size or masks.shape[2] != size:
            masks = tf.image.resize(masks, (size, size), method="area")
        return tf.cast(masks[..., 0] > 0.5, tf.float32)
