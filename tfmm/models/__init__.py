"""Task models, one module each."""

from tfmm.models.clip_backbone import CLIPBackbone
from tfmm.models.contrastive_retriever import ContrastiveRetriever
from tfmm.models.image_captioner import ImageCaptioner
from tfmm.models.multimodal_classifier import MultimodalClassifier
from tfmm.models.scene_attribute_classifier import SceneAttributeClassifier
from tfmm.models.task import Task
from tfmm.models.text_to_image_transformer import TextToImageTransformer
from tfmm.models.visual_question_answerer import VisualQuestionAnswerer
from tfmm.models.vqvae import VQVAE

__all__ = ["CLIPBackbone", "ContrastiveRetriever", "ImageCaptioner", "MultimodalClassifier", "SceneAttributeClassifier", "Task", "TextToImageTransformer",
    "VisualQuestionAnswerer", "VQVAE"]
