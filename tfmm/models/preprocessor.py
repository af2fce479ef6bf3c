import sys

import keras_hub
import numpy as np
import tensorflow as tf

from tfmm.errors import TfmmError
from tfmm.layers.image_converter import ImageConverter
from tfmm.text.word_piece_tokenizer import WordPieceTokenizer

__all__ = ["ImageConverter", "Preprocessor", "WordPieceTokenizer"]  # registered for presets of any task


class Preprocessor(keras_hub.models.Preprocessor):
    """Base of the tasks' preprocessors: raw inputs (image bytes or uint8 pixels, strings, label names)
    → the tensors the model takes, in `tf.data`, in `predict` and inside every export alike.

    Holds a `tokenizer` (`tfmm.text.WordPieceTokenizer`) with a `[CLS] … [SEP]` packer to
    `sequence_length` tokens, and/or an `image_converter` (`tfmm.layers.ImageConverter`); subclasses add
    the task's assets (answer vocabulary, class lists) and implement `call(x, y=None, sample_weight=None)`
    as keras-hub's preprocessors do. `save_to_preset` writes `preprocessor.json` and the tokenizer's
    vocabulary as a preset asset.
    """

    def __init__(self, tokenizer=None, image_converter=None, sequence_length=None, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        self.image_converter = image_converter
        self.sequence_length = sequence_length
        self.packer = None

    def __call__(self, x, y=None, sample_weight=None, **kwargs):
        # Keras refuses nests that mix tensors and arrays; raw inputs often come as both.
        x, y, sample_weight = (_as_tensors(part) for part in (x, y, sample_weight))
        return super().__call__(x, y=y, sample_weight=sample_weight, **kwargs)

    def build(self, input_shape=None):
        # The packer needs the vocabulary's special ids, which a preset loads after construction.
        if self.tokenizer is not None and self.packer is None:
            self.packer = keras_hub.layers.StartEndPacker(sequence_length=self.sequence_length, return_padding_mask=True,
                                                          **self.packing_ids())
        self.built = True

    def packing_ids(self):
        """The packer's `start_value`, `end_value` and `pad_value` (keras-hub model families differ)."""
        return {"start_value": self.tokenizer.start_id, "end_value": self.tokenizer.end_id,
                "pad_value": self.tokenizer.pad_id}

    def special_ids(self):
        """Token ids that are not words (start, end, padding, unknown)."""
        return self.tokenizer.special_ids

    def standardize(self, texts):
        """Text clean-up before tokenizing (a flat string tensor); the WordPiece tokenizer does its own."""
        return texts

    # ------------------------------------------------------------------------------------------ text

    @property
    def vocabulary(self):
        return list(self.tokenizer.get_vocabulary())

    @property
    def vocabulary_size(self):
        return self.tokenizer.vocabulary_size()

    def tokenize(self, texts):
        """Strings of any shape (...) → `token_ids` and `padding_mask` int32 (..., sequence_length)."""
        if not self.built:
            self.build()
        texts = tf.convert_to_tensor(texts, tf.string)
        flat = self.standardize(tf.reshape(texts, [-1]))
        token_ids, padding_mask = self.packer(self.tokenizer(flat))
        shape = tf.concat([tf.shape(texts), [self.sequence_length]], 0)
        return {"token_ids": tf.reshape(tf.cast(token_ids, tf.int32), shape),
                "padding_mask": tf.reshape(tf.cast(padding_mask, tf.int32), shape)}

    def tokenize_numpy(self, texts):
        """The host-side twin of `tokenize` for a list of strings: keras-hub's pure-Python WordPiece
        path, which needs no TensorFlow graph (TFLite hosts tokenize with it)."""
        if not self.built:
            self.build()
        token_ids, padding_mask = self.packer(self.tokenizer([str(t) for t in texts]))
        return {"token_ids": np.array(token_ids, np.int32), "padding_mask": np.array(padding_mask, np.int32)}

    def known_words(self, token_ids):
        """Per sequence, the word pieces the vocabulary knows (special and unknown tokens not counted)."""
        ignored = tf.constant(self.special_ids())
        known = ~tf.reduce_any(tf.convert_to_tensor(token_ids)[..., None] == ignored, axis=-1)
        return tf.reduce_sum(tf.cast(known, tf.int32), axis=-1)

    def detokenize(self, token_ids):
        return self.tokenizer.decode(token_ids)

    def check_texts(self, texts, what="text", require_known_words=False):
        """Host-side check of raw strings a user passed: none empty, and optionally each with a word the
        model knows; a failure names the text by its index."""
        texts = [str(t) for t in texts]
        for index, text in enumerate(texts):
            if not text.strip():
                raise TfmmError(f"{what} #{index} is empty")
        self.warn_overlong(texts, what)
        if require_known_words:
            known = self.known_words(self.tokenize_numpy(texts)["token_ids"]).numpy()
            for index, count in enumerate(known):
                if count == 0:
                    raise TfmmError(f"{what} #{index} {texts[index]!r} has no word the model knows")
        return texts

    def overlong(self, texts):
        """The texts with more tokens than `sequence_length` leaves room for beside the start and end tokens: the
        packer cuts their tail (and still ends them with the end token, so the packed ids cannot tell)."""
        if not texts or self.tokenizer is None:
            return []
        if not self.built:
            self.build()
        tokens = self.tokenizer(self.standardize(tf.constant(texts)))
        if isinstance(tokens, tf.RaggedTensor):
            lengths = tokens.row_lengths().numpy()
        elif isinstance(tokens, list):  # keras-hub hands eager results back as lists
            lengths = [len(row) for row in tokens]
        else:  # a tokenizer that pads to a length of its own: nothing to count
            return []
        ids = self.packing_ids()
        room = self.sequence_length - sum(ids.get(k) is not None for k in ("start_value", "end_value"))
        return [text for text, length in zip(texts, lengths) if length > room]

    def warn_overlong(self, texts, what="text"):
        """Says once per preprocessor that texts longer than `sequence_length` are truncated."""
        if getattr(self, "_overlong_warned", False):
            return
        cut = self.overlong(list(texts))
        if cut:
            self._overlong_warned = True
            print(f"warning: {len(cut)} {what}(s) longer than sequence_length {self.sequence_length} tokens are "
                  f"truncated, e.g. {cut[0]!r} (said once)", file=sys.stderr)

    # ---------------------------------------------------------------------------------------- images

    @property
    def image_size(self):
        return self.image_converter.side if self.image_converter is not None else None

    def convert_images(self, images):
        return self.image_converter(images)

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length}


def _as_tensors(value):
    """Arrays and lists of strings or bytes inside dicts as tensors (other values as they are)."""
    if isinstance(value, dict):
        return {key: _as_tensors(item) for key, item in value.items()}
    if isinstance(value, np.ndarray) and value.dtype != object:
        return tf.convert_to_tensor(value)
    if isinstance(value, (np.ndarray, list)) and len(value) and not isinstance(value, tf.Tensor):
        return tf.constant(value.tolist() if isinstance(value, np.ndarray) else value, tf.string)
    return value
