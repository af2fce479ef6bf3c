"""Datasets (the built-in `shapes`, user formats), the shared tf.data pipeline, augmentation."""

from tfmm.data.augment import BatchMixer, ImageAugmenter
from tfmm.data.images import ImageCheck, decode_and_resize, decode_batch, to_float
from tfmm.data.pipeline import build_pipeline
from tfmm.data.sources import load_captioned_images, load_shapes

__all__ = [
    "BatchMixer", "ImageAugmenter", "ImageCheck", "build_pipeline", "decode_and_resize", "decode_batch",
    "load_captioned_images", "load_shapes", "to_float",
]
