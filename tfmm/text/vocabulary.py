"""WordPiece vocabularies learnt from training text (keras-hub / tensorflow-text), one token per line on disk."""

from pathlib import Path

import keras_hub
import tensorflow as tf

from tfmm.errors import TfmmError

RESERVED_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]  # keras-hub's BERT-style defaults


def learn_vocabulary(texts, vocabulary_size):
    """Learns a lower-cased, accent-stripped WordPiece vocabulary from an iterable of strings or a tf.data of them."""
    if isinstance(texts, (list, tuple)):
        if not texts:
            raise TfmmError("cannot learn a vocabulary from no text")
        # keras-hub reads a plain list of strings as file names; give it a dataset instead.
        texts = tf.data.Dataset.from_tensor_slices(list(texts)).batch(1024)
    return keras_hub.tokenizers.compute_word_piece_vocabulary(
        texts, vocabulary_size, lowercase=True, strip_accents=True, reserved_tokens=RESERVED_TOKENS
    )


def save_vocabulary(vocabulary, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")


def load_vocabulary(path):
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"vocabulary file not found: {path}")
    vocabulary = path.read_text(encoding="utf-8").splitlines()
    missing = [t for t in ("[PAD]", "[UNK]") if t not in vocabulary]
    if missing:
        raise TfmmError(f"vocabulary {path} lacks the reserved tokens {missing}")
    return vocabulary
