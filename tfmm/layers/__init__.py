"""Reusable, serialisable Keras layers."""

from tfmm.layers.contrastive_head import ContrastiveHead
from tfmm.layers.projection_head import ProjectionHead
from tfmm.layers.segment_ids import SegmentIds
from tfmm.layers.token_pooling import TokenPooling

__all__ = ["ContrastiveHead", "ProjectionHead", "SegmentIds", "TokenPooling"]
