"""Smoke-sized tasks with their preprocessors and raw examples, built in seconds, for the tests of
every task (big_vision's `smoke` variants)."""

import keras_hub
import numpy as np

from tfmm.encoders import CNNImageEncoder, build_image_encoder, build_text_encoder, image_encoder_options, text_encoder_options
from tfmm.layers import ImageConverter, build_decoder, build_fusion, decoder_options, fusion_options
from tfmm.models import (
    VQVAE,
    CLIPBackbone,
    ContrastiveRetriever,
    ContrastiveRetrieverPreprocessor,
    FusionBackbone,
    GANDiscriminator,
    GANGeneratorBackbone,
    ImageCaptioner,
    ImageCaptionerBackbone,
    ImageCaptionerPreprocessor,
    ImagePreprocessor,
    MultimodalClassifier,
    MultimodalClassifierPreprocessor,
    ReferringSegmenter,
    ReferringSegmenterBackbone,
    ReferringSegmenterPreprocessor,
    SceneAttributeClassifier,
    TextToImageBackbone,
    TextToImageGAN,
    TextToImageGenerator,
    TextToImagePreprocessor,
    VisualQuestionAnswerer,
    VisualQuestionAnswererPreprocessor,
    VQVAEBackbone,
)
from tfmm.text import WordPieceTokenizer, learn_vocabulary

TEXTS = ["a small red circle left of a large blue star", "what color is the shape", "is there a green square",
         "the report mentions a yellow cross", "no purple triangle here", "a white shape on the right"]
IMAGE_SIZE = 16


def tokenizer():
    return WordPieceTokenizer(vocabulary=learn_vocabulary(TEXTS, 80))


def images(count, size=IMAGE_SIZE + 4, seed=0):
    """Raw uint8 images of another size than the models take (the converter resizes them)."""
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def _image_encoder():
    return build_image_encoder(image_encoder_options("cnn", size="tiny"), IMAGE_SIZE)


def _text_encoder(vocabulary_size, length, name="transformer"):
    return build_text_encoder(text_encoder_options(name, size="tiny"), vocabulary_size, length)


def retriever():
    preprocessor = ContrastiveRetrieverPreprocessor(tokenizer(), ImageConverter(IMAGE_SIZE), 8)
    backbone = CLIPBackbone(_image_encoder(), _text_encoder(preprocessor.vocabulary_size, 8), 16)
    return ContrastiveRetriever(backbone, preprocessor)


def answerer(fusion="cross_attention", frames=0, answers=("yes", "no", "red", "circle")):
    preprocessor = VisualQuestionAnswererPreprocessor(tokenizer(), ImageConverter(IMAGE_SIZE), 8, list(answers))
    options = fusion_options(fusion, hidden_dim=16, **({"num_heads": 2} if "attention" in fusion else {}))
    backbone = FusionBackbone(_image_encoder(), _text_encoder(preprocessor.vocabulary_size, 8),
                              build_fusion(options, len(answers)), question_groups=True, frames=frames)
    return VisualQuestionAnswerer(backbone, preprocessor, classifier_hidden_dim=8)


def classifier(fusion="gated", tasks=None, **options):
    tasks = tasks or {"main": ["a", "b", "c"], "aux": ["x", "y"]}
    preprocessor = MultimodalClassifierPreprocessor(tokenizer(), ImageConverter(IMAGE_SIZE), 8, tasks)
    modalities = {"image_only": "image", "text_only": "text"}.get(fusion, "both")
    backbone = FusionBackbone(_image_encoder(), _text_encoder(preprocessor.vocabulary_size, 8, "gru"),
                              build_fusion(fusion_options(fusion, hidden_dim=8), 8), modalities=modalities, hidden_dim=8)
    return MultimodalClassifier(backbone, preprocessor, hidden_dim=8, **options)


def captioner(decoder="transformer", length=9, **options):
    preprocessor = ImageCaptionerPreprocessor(tokenizer(), ImageConverter(IMAGE_SIZE), length + 1)
    encoder = _image_encoder()
    settings = ({"hidden_dim": 16, "num_layers": 2, "num_heads": 2, "intermediate_dim": 16, "dropout": 0.0}
                if decoder == "transformer" else {"hidden_dim": 16, "embedding_dim": 8, "attention_dim": 8, "dropout": 0.0})
    layer = build_decoder(decoder_options(decoder, **settings), preprocessor.vocabulary_size, length,
                          encoder.output["sequence_output"].shape[1])
    return ImageCaptioner(ImageCaptionerBackbone(encoder, layer, length), preprocessor, **options)


def segmenter(conditioning="film", tokenizer_=None):
    preprocessor = ReferringSegmenterPreprocessor(tokenizer_ or tokenizer(), ImageConverter(IMAGE_SIZE), 8)
    backbone = ReferringSegmenterBackbone(_text_encoder(preprocessor.vocabulary_size, 8), IMAGE_SIZE, filters=(8, 16),
                                          conditioning=conditioning, num_heads=2)
    return ReferringSegmenter(backbone, preprocessor)


def vqvae_backbone():
    return VQVAEBackbone(IMAGE_SIZE, 4, hidden_dim=16, residual_blocks=1, num_codes=8, code_dim=4, ema_decay=0.9)


def vqvae():
    return VQVAE(vqvae_backbone(), ImagePreprocessor(image_converter=ImageConverter(IMAGE_SIZE)))


def generator(**options):
    preprocessor = TextToImagePreprocessor(tokenizer(), ImageConverter(IMAGE_SIZE), 8)
    backbone = TextToImageBackbone(preprocessor.vocabulary_size, 8, 8, 16, hidden_dim=16, num_layers=1, num_heads=2,
                                   intermediate_dim=16, dropout=0.0)
    return TextToImageGenerator(backbone, vqvae_backbone(), preprocessor, **options)


def gan(**options):
    """A 16 px text-to-image GAN (4×4 → 8 → 16, word attention at 8)."""
    preprocessor = TextToImagePreprocessor(tokenizer(), ImageConverter(IMAGE_SIZE), 8)
    sizes = dict(vocabulary_size=preprocessor.vocabulary_size, sequence_length=8, image_size=IMAGE_SIZE, channels=16,
                 text_dim=8, text_layers=1, attention_heads=2)
    return TextToImageGAN(GANGeneratorBackbone(noise_dim=4, attention_sizes=(8,), **sizes), GANDiscriminator(**sizes),
                          preprocessor, **options)


def judge(colours=6, shapes=5):
    encoder = CNNImageEncoder(image_size=IMAGE_SIZE, filters=(8, 16), normalization="batch")
    return SceneAttributeClassifier(encoder, ImagePreprocessor(image_converter=ImageConverter(IMAGE_SIZE)), colours, shapes,
                                    hidden_dim=8)


def assistant(tokenizer_=None, family="gpt2", sequence_length=24, max_reply_length=4, region_classes=(),
              region_weight=0.0):
    from tfmm.models.visual_assistant import VisualAssistant
    from tfmm.models.visual_assistant_backbone import VisualAssistantBackbone
    from tfmm.models.visual_assistant_preprocessor import VisualAssistantPreprocessor

    words = ["user: assistant: what colour shape and its size? red no yes circle"] + list(TEXTS)
    tokenizer_ = tokenizer_ or WordPieceTokenizer(vocabulary=learn_vocabulary(words * 20, 120))
    preprocessor = VisualAssistantPreprocessor(tokenizer_, ImageConverter(IMAGE_SIZE), sequence_length)
    vocabulary = preprocessor.vocabulary_size
    if family == "gpt2":
        language_model = keras_hub.models.GPT2Backbone(vocabulary_size=vocabulary, num_layers=2, num_heads=2,
                                                       hidden_dim=32, intermediate_dim=64, dropout=0.0,
                                                       max_sequence_length=64)
    else:
        language_model = keras_hub.models.GemmaBackbone(vocabulary_size=vocabulary, num_layers=2, num_query_heads=2,
                                                        num_key_value_heads=1, hidden_dim=32, intermediate_dim=64,
                                                        head_dim=16)
    return VisualAssistant(VisualAssistantBackbone(_image_encoder(), language_model, region_classes), preprocessor,
                           max_reply_length=max_reply_length, region_weight=region_weight)
