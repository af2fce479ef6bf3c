"""Reusable, serialisable Keras layers."""

from tfmm.layers.caption_decoders import DECODERS, build_decoder, decoder_options
from tfmm.layers.contrastive_head import ContrastiveHead
from tfmm.layers.coordinate_channels import CoordinateChannels
from tfmm.layers.frame_attention_pooling import FrameAttentionPooling
from tfmm.layers.fusion import FUSIONS, build_fusion, fusion_options
from tfmm.layers.grid_positions import GridPositions
from tfmm.layers.groups import FoldGroups, RepeatForGroups, UnfoldGroups
from tfmm.layers.gru_attention_decoder import GRUAttentionDecoder
from tfmm.layers.image_converter import ImageConverter
from tfmm.layers.projection_head import ProjectionHead
from tfmm.layers.segment_ids import SegmentIds
from tfmm.layers.text_conditioning import AttributeFit, FiLM, WordAttention
from tfmm.layers.token_pooling import TokenPooling
from tfmm.layers.transformer_block import TransformerBlock
from tfmm.layers.transformer_caption_decoder import CaptionDecoderBlock, TransformerCaptionDecoder
from tfmm.layers.vector_quantizer import VectorQuantizer

__all__ = [
    "AttributeFit", "build_decoder", "build_fusion", "CaptionDecoderBlock", "ContrastiveHead", "CoordinateChannels",
    "decoder_options", "DECODERS", "FiLM", "FoldGroups", "FrameAttentionPooling", "fusion_options", "FUSIONS",
    "GridPositions", "GRUAttentionDecoder", "ImageConverter", "ProjectionHead", "RepeatForGroups", "SegmentIds",
    "TokenPooling", "TransformerBlock", "TransformerCaptionDecoder", "UnfoldGroups", "VectorQuantizer",
    "WordAttention",
]
