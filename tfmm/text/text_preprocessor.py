import re

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class TextPreprocessor(keras.layers.Layer):
    """Raw strings → `token_ids` and `padding_mask`, fixed `sequence_length`.

    WordPiece (lower-cased, accents stripped) with `[CLS] ... [SEP]` and `[PAD]`
    padding. Inside `tf.data` and SavedModels it runs the tensorflow-text graph ops;
    `tokenize_numpy` runs keras-hub's pure-Python path on the same vocabulary, for
    TFLite hosts, which cannot run the string ops (tests check both give equal ids).
    """

    def __init__(self, vocabulary, sequence_length, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        self.sequence_length = sequence_length
        self.tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=self.vocabulary, lowercase=True, strip_accents=True, oov_token="[UNK]", dtype="int32"
        )
        self.pad_id = self.vocabulary.index("[PAD]")
        self.start_id = self.vocabulary.index("[CLS]") if "[CLS]" in self.vocabulary else None
        self.end_id = self.vocabulary.index("[SEP]") if "[SEP]" in self.vocabulary else None
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=sequence_length, start_value=self.start_id, end_value=self.end_id,
            pad_value=self.pad_id, return_padding_mask=True,
        )

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    def call(self, texts):
        token_ids, padding_mask = self.packer(self.tokenizer(texts))
        return {"token_ids": ops.cast(token_ids, "int32"), "padding_mask": ops.cast(padding_mask, "int32")}

    def tokenize_numpy(self, texts):
        """Host-side twin of `call` for a list of strings; needs no TensorFlow graph."""
        token_ids, padding_mask = self.packer(self.tokenizer([str(t) for t in texts]))
        return {"token_ids": np.asarray(token_ids, np.int32), "padding_mask": np.asarray(padding_mask, np.int32)}

    @property
    def special_ids(self):
        return [self.vocabulary.index(t) for t in ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]") if t in self.vocabulary]

    def detokenize(self, token_ids):
        """Token ids (..., L) → strings (...): the tokens before the first [SEP], special tokens dropped,
        word pieces joined, no space before punctuation. TensorFlow ops (SavedModels use it)."""
        token_ids = tf.convert_to_tensor(token_ids, tf.int32)
        before_end = tf.math.cumsum(tf.cast(token_ids == self.end_id, tf.int32), axis=-1) == 0
        special = tf.reduce_any(token_ids[..., None] == tf.constant(self.special_ids), axis=-1)
        words = tf.where(before_end & ~special, tf.gather(tf.constant(self.vocabulary), token_ids), "")
        text = tf.strings.reduce_join(words, axis=-1, separator=" ")
        text = tf.strings.strip(tf.strings.regex_replace(text, " +", " "))
        text = tf.strings.regex_replace(text, " ##", "")
        return tf.strings.regex_replace(text, r" ([,.;:!?])", r"\1")

    def detokenize_numpy(self, token_ids):
        """Host-side twin of `detokenize` for one sequence of ids; needs no TensorFlow graph."""
        special, words = set(self.special_ids), []
        for token in token_ids:
            if token == self.end_id:
                break
            if token not in special:
                words.append(self.vocabulary[token])
        return re.sub(r" ([,.;:!?])", r"\1", " ".join(words).replace(" ##", ""))

    def compute_output_spec(self, texts):
        shape = (*texts.shape, self.sequence_length)
        return {"token_ids": keras.KerasTensor(shape, "int32"), "padding_mask": keras.KerasTensor(shape, "int32")}

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "sequence_length": self.sequence_length}
