import keras
import tensorflow as tf

from tfmm.models.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tfmm")
class ReferringSegmenterPreprocessor(Preprocessor):
    """Raw images and referring expressions → the segmenter's tensors; masks → per-pixel targets.

    `x`: `images` (uint8 pixels or encoded bytes) and `text`; `y` (training): masks (N, H, W), 0 = background,
    > 0 = named, at the images' own size (or `{"mask", "shape_map", "colour_map"}`, either map optional: the
    built-in data's auxiliary targets too).
    Masks are brought to the model's S×S as the images are (area resampling; a pixel is named when more than half
    of what it covers is), as float32 0/1.
    """

    def call(self, x, y=None, sample_weight=None):
        inputs = {"images": self.convert_images(x["images"]), **self.tokenize(x["text"])}
        if isinstance(y, dict):  # the built-in data's auxiliary target rides along (see ReferringSegmenter)
            y = {key: self.convert_masks(value) if key == "mask" else self.convert_class_map(value)
                 for key, value in y.items()}
        elif y is not None:
            y = self.convert_masks(y)
        return keras.utils.pack_x_y_sample_weight(inputs, y, sample_weight)

    def convert_class_map(self, class_map):
        """Per-pixel class ids (N, H, W) → int32 at the model's S×S (nearest)."""
        class_map = tf.convert_to_tensor(class_map)[..., None]
        if class_map.shape[1] != self.image_size or class_map.shape[2] != self.image_size:
            class_map = tf.image.resize(class_map, (self.image_size, self.image_size), method="nearest")
        return tf.cast(class_map[..., 0], tf.int32)

    def convert_masks(self, masks):
        masks = tf.cast(tf.convert_to_tensor(masks) > 0, tf.float32)[..., None]
        size = self.image_size
        if masks.shape[1] != size or masks.shape[2] != size:
            masks = tf.image.resize(masks, (size, size), method="area")
        return tf.cast(masks[..., 0] > 0.5, tf.float32)
