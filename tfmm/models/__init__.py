"""Task models, one module each."""

from tfmm.models.clip_backbone import CLIPBackbone
from tfmm.models.contrastive_retriever import ContrastiveRetriever

__all__ = ["CLIPBackbone", "ContrastiveRetriever"]
