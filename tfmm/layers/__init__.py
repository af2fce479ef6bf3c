"""Reusable, serialisable Keras layers."""

from tfmm.layers.contrastive_head import ContrastiveHead
from tfmm.layers.frame_attention_pooling import FrameAttentionPooling
from tfmm.layers.fusion import FUSIONS, build_fusion
from tfmm.layers.projection_head import ProjectionHead
from tfmm.layers.groups import FoldGroups, RepeatForGroups, UnfoldGroups
from tfmm.layers.segment_ids import SegmentIds
from tfmm.layers.token_pooling import TokenPooling

__all__ = [
    "FUSIONS", "ContrastiveHead", "FoldGroups", "FrameAttentionPooling", "ProjectionHead", "RepeatForGroups",
    "SegmentIds", "TokenPooling", "UnfoldGroups", "build_fusion",
]
