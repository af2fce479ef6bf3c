"""Task models, one module each."""

from tfmm.models.clip_backbone import CLIPBackbone
from tfmm.models.contrastive_retriever import ContrastiveRetriever
from tfmm.models.image_captioner import ImageCaptioner
from tfmm.models.multimodal_classifier import MultimodalClassifier
from tfmm.models.task import Task
from tfmm.models.visual_question_answerer import VisualQuestionAnswerer

__all__ = ["CLIPBackbone", "ContrastiveRetriever", "ImageCaptioner", "MultimodalClassifier", "Task", "VisualQuestionAnswerer"]
