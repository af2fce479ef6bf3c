"""Task models, keras-hub style: a backbone (tensors → features), a preprocessor (raw inputs → tensors)
and a task (backbone + preprocessor + loss and decoding) per app, each saved and loaded as a preset.

    import tfmm.models
    task = tfmm.models.from_preset(path)        # any task, from its preset or run directory
"""

from tfmm.models.clip_backbone import CLIPBackbone
from tfmm.models.contrastive_retriever import ContrastiveRetriever
from tfmm.models.contrastive_retriever_preprocessor import ContrastiveRetrieverPreprocessor
from tfmm.models.fusion_backbone import FusionBackbone
from tfmm.models.gan_backbones import GANDiscriminator, GANGeneratorBackbone
from tfmm.models.image_captioner import ImageCaptioner
from tfmm.models.image_captioner_backbone import ImageCaptionerBackbone
from tfmm.models.image_captioner_preprocessor import ImageCaptionerPreprocessor
from tfmm.models.image_preprocessor import ImagePreprocessor
from tfmm.models.keras_hub_dual_encoder import (
    KerasHubContrastiveRetriever,
    KerasHubDualEncoder,
    KerasHubDualEncoderPreprocessor,
)
from tfmm.models.multimodal_classifier import MultimodalClassifier
from tfmm.models.multimodal_classifier_preprocessor import MultimodalClassifierPreprocessor
from tfmm.models.preprocessor import Preprocessor
from tfmm.models.presets import from_preset, preset_path, save_preset
from tfmm.models.referring_segmenter import ReferringSegmenter
from tfmm.models.referring_segmenter_backbone import ReferringSegmenterBackbone
from tfmm.models.referring_segmenter_preprocessor import ReferringSegmenterPreprocessor
from tfmm.models.scene_attribute_classifier import SceneAttributeClassifier
from tfmm.models.task import Task
from tfmm.models.text_to_image_backbone import TextToImageBackbone
from tfmm.models.text_to_image_gan import TextToImageGAN
from tfmm.models.text_to_image_generator import TextToImageGenerator
from tfmm.models.text_to_image_preprocessor import TextToImagePreprocessor
from tfmm.models.visual_assistant import VisualAssistant
from tfmm.models.visual_assistant_backbone import VisualAssistantBackbone
from tfmm.models.visual_assistant_preprocessor import VisualAssistantPreprocessor
from tfmm.models.visual_question_answerer import VisualQuestionAnswerer
from tfmm.models.visual_question_answerer_preprocessor import VisualQuestionAnswererPreprocessor
from tfmm.models.vqvae import VQVAE
from tfmm.models.vqvae_backbone import VQVAEBackbone

__all__ = [
    "GANDiscriminator", "GANGeneratorBackbone",
    "CLIPBackbone", "ContrastiveRetriever", "ContrastiveRetrieverPreprocessor", "FusionBackbone", "ImageCaptioner",
    "ImageCaptionerBackbone", "ImageCaptionerPreprocessor", "ImagePreprocessor", "KerasHubContrastiveRetriever",
    "KerasHubDualEncoder",     "KerasHubDualEncoderPreprocessor", "MultimodalClassifier",
    "MultimodalClassifierPreprocessor", "Preprocessor", "ReferringSegmenter", "ReferringSegmenterBackbone",
    "ReferringSegmenterPreprocessor", "SceneAttributeClassifier", "Task", "TextToImageBackbone",
    "TextToImageGAN", "TextToImageGenerator", "TextToImagePreprocessor", "VQVAE", "VQVAEBackbone", "VisualAssistant",
    "VisualAssistantBackbone", "VisualAssistantPreprocessor", "VisualQuestionAnswerer",
    "VisualQuestionAnswererPreprocessor", "from_preset", "preset_path", "save_preset",
]
