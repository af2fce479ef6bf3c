"""Datasets (the built-in `shapes`, user formats), the shared tf.data pipeline, augmentation."""

from tfmm.data.augment import ImageAugmenter
from tfmm.data.checks import DataChecks, ImageCheck, RowCheck
from tfmm.data.images import decode_and_resize, read_image_files, resize_pixels
from tfmm.data.pipeline import build_pipeline
from tfmm.data.sources import load_captioned_images, load_shapes

__all__ = [
    "DataChecks", "ImageAugmenter", "ImageCheck", "RowCheck", "build_pipeline", "decode_and_resize",
    "load_captioned_images", "load_shapes", "read_image_files", "resize_pixels",
]
