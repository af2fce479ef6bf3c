"""Vocabularies and tokenizers: in-graph for tf.data and SavedModels, pure Python for TFLite hosts."""

from tfmm.text.text_augmenter import TextAugmenter
from tfmm.text.text_preprocessor import TextPreprocessor
from tfmm.text.vocabulary import RESERVED_TOKENS, learn_vocabulary, load_vocabulary, save_vocabulary

__all__ = ["RESERVED_TOKENS", "TextAugmenter", "TextPreprocessor", "learn_vocabulary", "load_vocabulary", "save_vocabulary"]
