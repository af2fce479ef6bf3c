"""Vocabularies and tokenizers: in-graph for tf.data and SavedModels, pure Python for TFLite hosts."""

from tfmm.text.text_augmenter import TextAugmenter
from tfmm.text.vocabulary import RESERVED_TOKENS, learn_vocabulary, load_vocabulary, save_vocabulary
from tfmm.text.word_piece_tokenizer import WordPieceTokenizer

__all__ = ["RESERVED_TOKENS", "TextAugmenter", "WordPieceTokenizer", "learn_vocabulary", "load_vocabulary",
           "save_vocabulary"]
