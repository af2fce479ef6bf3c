import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfmm.data.images import decode_and_resize, resize_pixels
from tfmm.errors import TfmmError


@keras.saving.register_keras_serializable(package="tfmm")
class ImageConverter(keras_hub.layers.ImageConverter):
    """Raw images → model input, the same in `tf.data`, in `predict` and in every export.

    Takes encoded image bytes (PNG/JPEG/GIF/BMP, a string tensor of any shape) or uint8 pixels
    (..., H, W, 3) of any size, and returns float32 (..., S, S, 3): pixels 0..255 times `scale` plus
    `offset` (each a number or one per channel; by default 1/255 and none, so 0..1 — a pretrained
    preset brings its own mean/std normalisation through them). Bytes are decoded and
    resized to S×S with antialiasing and rounded to uint8 (`tfmm.data.images.decode_and_resize`,
    which the data sources also use), pixels of another size are resized the same way, so an image
    gives the same model input whichever way it arrives. Anything else (float pixels, the wrong
    channel count) is an error naming what it got.
    """

    def __init__(self, image_size=None, scale=1.0 / 255.0, offset=None, **kwargs):
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        for key in ("antialias", "interpolation", "crop_to_aspect_ratio"):
            kwargs.pop(key, None)  # fixed below; present in configs this layer wrote
        super().__init__(image_size=image_size, scale=scale, offset=offset, antialias=True,
                         interpolation="bilinear", crop_to_aspect_ratio=False, **kwargs)

    @classmethod
    def like(cls, converter):
        """This suite's converter with another (keras-hub) converter's size and normalisation; decoding and
        resizing stay this layer's own, so every path (pipeline, predict, export) converts alike."""
        return cls(tuple(converter.image_size), scale=converter.scale, offset=converter.offset)

    @property
    def side(self):
        return self.image_size[0]

    def pixels(self, images):
        """Raw images → uint8 (..., S, S, 3)."""
        images = images if isinstance(images, (tf.Tensor, tf.RaggedTensor)) else _as_tensor(images)
        size = self.side
        if images.dtype == tf.string:
            flat = tf.reshape(images, [-1])
            decoded = tf.map_fn(lambda b: decode_and_resize(b, size), flat,
                                fn_output_signature=tf.TensorSpec((size, size, 3), tf.uint8))
            return tf.reshape(decoded, tf.concat([tf.shape(images), [size, size, 3]], 0))
        if images.dtype != tf.uint8:
            raise TfmmError(f"images must be uint8 pixels (N, H, W, 3) or encoded image bytes, got {images.dtype.name}")
        if images.shape.rank is not None and (images.shape.rank < 3 or images.shape[-1] != 3):
            raise TfmmError(f"images must have 3 colour channels last (N, H, W, 3), got shape {images.shape}")
        if images.shape[-3] == size and images.shape[-2] == size:
            return images
        lead = tf.shape(images)[:-3]
        flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[-3:]], 0))
        return tf.reshape(resize_pixels(flat, size), tf.concat([lead, [size, size, 3]], 0))

    def call(self, inputs):
        pixels = tf.cast(self.pixels(inputs), tf.float32) * tf.constant(self.scale, tf.float32)
        return pixels if self.offset is None else pixels + tf.constant(self.offset, tf.float32)

    def compute_output_spec(self, inputs):
        shape = tuple(inputs.shape[:-3] if inputs.dtype == "uint8" else inputs.shape) + (self.side, self.side, 3)
        return keras.KerasTensor(shape, "float32")


def _as_tensor(images):
    """A list of encoded images or an array of pixels as a tensor; anything else is an error naming it."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise TfmmError("no images given")
        if all(isinstance(i, (bytes, bytearray)) for i in images):
            return tf.constant([bytes(i) for i in images], tf.string)
        if all(isinstance(i, np.ndarray) for i in images):
            return tf.constant(np.stack(images))
        kinds = sorted({type(i).__name__ for i in images})
        raise TfmmError(f"images must be a uint8 array (N, H, W, 3) or a list of encoded image bytes, got a list of {kinds}")
    if isinstance(images, np.ndarray):
        if images.dtype == object:
            return tf.constant(images.astype(bytes))
        return tf.constant(images)
    raise TfmmError(f"images must be a uint8 array (N, H, W, 3) or a list of encoded image bytes, got {type(images).__name__}")
