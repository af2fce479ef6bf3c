"""Model parts the apps build the same way from their config sections."""

from pathlib import Path

from tfmm.encoders import build_image_encoder, build_text_encoder, preset_image_converter, preset_vocabulary
from tfmm.errors import TfmmError
from tfmm.layers import ImageConverter, build_fusion
from tfmm.layers.fusion import BASELINES
from tfmm.models import FusionBackbone
from tfmm.text import WordPieceTokenizer, learn_vocabulary


def build_tokenizer(model, texts, source):
    """The WordPiece tokenizer of a `[model]` section: the pretrained text encoder's vocabulary when it
    brings one, else one of `model.vocabulary_size` learnt from `texts()` (the training text)."""
    weights = getattr(getattr(model, "text_encoder", None), "weights", "")
    vocabulary = preset_vocabulary(weights) if weights else None
    if vocabulary is None:
        texts = list(texts())
        if not texts:
            raise TfmmError(f"data.source {source}: the training split has no text to learn a vocabulary from")
        vocabulary = learn_vocabulary(texts, model.vocabulary_size)
    return WordPieceTokenizer(vocabulary=vocabulary)


def image_converter(config):
    """Images at `data.image_size`, scaled 0..1 — or, for an image encoder loaded from a keras-hub preset
    that has an image converter (ViT, ResNet), normalised as that preset was trained."""
    weights = getattr(getattr(config.model, "image_encoder", None), "weights", "")
    pretrained = preset_image_converter(weights) if weights else None
    if pretrained is None:
        return ImageConverter(config.data.image_size)
    return ImageConverter(config.data.image_size, scale=pretrained.scale, offset=pretrained.offset)


def build_fusion_backbone(config, vocabulary_size, num_outputs, question_groups=False, frames=0, frame_heads=2):
    """Encoders + fusion of a `[model]` section with `image_encoder`, `text_encoder` and `fusion` (a fusion,
    or a single-modality baseline: `image_only`, `text_only`)."""
    m = config.model
    modalities = BASELINES.get(m.fusion.name, "both")
    image_encoder = build_image_encoder(m.image_encoder, config.data.image_size)
    text_encoder = build_text_encoder(m.text_encoder, vocabulary_size, m.sequence_length)
    fusion = build_fusion(m.fusion, num_outputs)
    return FusionBackbone(image_encoder, text_encoder, fusion, modalities=modalities, question_groups=question_groups,
                          frames=frames, frame_heads=frame_heads, hidden_dim=m.fusion.hidden_dim)


def pretrained_multipliers(model):
    """{variable path: factor} for the encoders loaded from pretrained weights (they train more gently)."""
    factor = model.pretrained_learning_rate_multiplier

    def multipliers(task):
        factors = {}
        for options, encoder in ((model.image_encoder, task.backbone.image_encoder),
                                 (model.text_encoder, task.backbone.text_encoder)):
            if options.weights:
                factors.update({v.path: factor for v in encoder.trainable_variables})
        return factors

    return multipliers


def build_language_model(options, vocabulary_size, positions):
    """A keras-hub GPT-2 or Gemma backbone of a `[model.language_model]` section's sizes, trained from scratch,
    holding `positions` (image tokens + words)."""
    import keras_hub

    o = options
    if o.family == "gpt2":
        return keras_hub.models.GPT2Backbone(vocabulary_size=vocabulary_size, num_layers=o.num_layers,
                                             num_heads=o.num_heads, hidden_dim=o.hidden_dim,
                                             intermediate_dim=o.intermediate_dim, dropout=o.dropout,
                                             max_sequence_length=positions, name="gpt2")
    return keras_hub.models.GemmaBackbone(vocabulary_size=vocabulary_size, num_layers=o.num_layers,
                                          num_query_heads=o.num_heads, num_key_value_heads=o.num_heads,
                                          hidden_dim=o.hidden_dim, intermediate_dim=o.intermediate_dim,
                                          head_dim=o.hidden_dim // o.num_heads, dropout=o.dropout, name="gemma")


def _preset_folder(path):
    if not (Path(path) / "config.json").is_file():
        raise TfmmError(f"model.language_model.preset {path}: not a keras-hub preset folder (no config.json)")
    return str(path)


def language_model_preset(path, family):
    """The backbone of a local keras-hub causal-LM preset folder of `family` (GPT-2 or Gemma)."""
    import keras_hub

    from tfmm.layers.prefix_language_model import family_of

    backbone = keras_hub.models.Backbone.from_preset(_preset_folder(path))
    found = family_of(backbone)
    if found != family:
        raise TfmmError(f"model.language_model.preset {path} holds a {found} model; model.language_model.family is "
                        f"{family}")
    return backbone


def language_model_tokenizer(path):
    """The tokenizer of a local keras-hub causal-LM preset folder (without loading its weights)."""
    import keras_hub

    return keras_hub.tokenizers.Tokenizer.from_preset(_preset_folder(path))
