import re

import keras
import keras_hub
import tensorflow as tf

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")  # keras-hub's BERT-style reserved tokens


@keras.saving.register_keras_serializable(package="tfmm")
class WordPieceTokenizer(keras_hub.tokenizers.WordPieceTokenizer):
    """keras-hub's WordPiece (lower-cased, accents stripped, `[UNK]` for unknown pieces) with what the
    suite's decoders need: the ids of `[PAD]`, `[CLS]` (start) and `[SEP]` (end), and turning ids back
    into text — in TensorFlow ops (`decode`, used inside SavedModels) and in plain Python
    (`decode_numpy`, for TFLite hosts); both stop at the end token and drop special tokens.

    The vocabulary is saved as a preset asset (`assets/tokenizer/vocabulary.txt`), as keras-hub does.
    """

    def __init__(self, vocabulary=None, **kwargs):
        for key, value in (("lowercase", True), ("strip_accents", True), ("oov_token", "[UNK]"), ("dtype", "int32")):
            kwargs.setdefault(key, value)
        super().__init__(vocabulary=vocabulary, **kwargs)

    def _id(self, token):
        vocabulary = self.get_vocabulary()
        return vocabulary.index(token) if token in vocabulary else None

    @property
    def pad_id(self):
        return self._id("[PAD]")

    @property
    def start_id(self):
        return self._id("[CLS]")

    @property
    def end_id(self):
        return self._id("[SEP]")

    @property
    def unknown_id(self):
        return self._id("[UNK]")

    @property
    def special_ids(self):
        return [i for i in (self._id(t) for t in SPECIAL_TOKENS) if i is not None]

    def first_piece_ids(self, words):
        """The id of each word's first piece ("crosses" → "cross", "##es": the id of "cross"), for the words whose
        first piece is in the vocabulary; what a word-matching layer looks for among the token ids."""
        firsts = [int(pieces[0]) for pieces in map(self, words) if len(pieces)]
        return [i for i in firsts if i != self.unknown_id]

    def decode(self, token_ids):
        """Token ids (..., L) → strings (...): the tokens before the first end token, special tokens
        dropped, word pieces joined, no space before punctuation."""
        text = tf.strings.reduce_join(self.token_strings(token_ids), axis=-1, separator=" ")
        text = tf.strings.strip(tf.strings.regex_replace(text, " +", " "))
        text = tf.strings.regex_replace(text, " ##", "")
        return tf.strings.regex_replace(text, r" ([,.;:!?])", r"\1")

    def token_strings(self, token_ids):
        """Token ids (..., L) → their word pieces (..., L), "" for special tokens and from the first end
        token on: what a per-token display (a caption's attention strip) shows."""
        token_ids = tf.convert_to_tensor(token_ids, tf.int32)
        before_end = tf.math.cumsum(tf.cast(token_ids == self.end_id, tf.int32), axis=-1) == 0
        special = tf.reduce_any(token_ids[..., None] == tf.constant(self.special_ids), axis=-1)
        return tf.where(before_end & ~special, tf.gather(tf.constant(self.get_vocabulary()), token_ids), "")

    def decode_numpy(self, token_ids):
        """The plain-Python twin of `decode` for one sequence of ids."""
        special, vocabulary, words = set(self.special_ids), self.get_vocabulary(), []
        for token in token_ids:
            if token == self.end_id:
                break
            if token not in special:
                words.append(vocabulary[token])
        return re.sub(r" ([,.;:!?])", r"\1", " ".join(words).replace(" ##", ""))
