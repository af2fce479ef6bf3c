"""Simple text augmentation on raw strings inside tf.data: random deletion, random swap, synonyms.

Deletion and swap are keras-hub's `RandomDeletion` / `RandomSwap` layers on the
whitespace-split words; synonyms come from a word → alternatives table.
"""

import keras_hub
import tensorflow as tf

# Replacements that keep the meaning of `shapes` captions (and of ordinary English).
SYNONYMS = {
    "small": ["little", "tiny"],
    "large": ["big", "huge"],
    "picture": ["photo", "image"],
    "image": ["picture", "photo"],
    "showing": ["with", "depicting"],
    "shapes": ["objects", "figures"],
    "background": ["backdrop"],
    "dark": ["black"],
}


class TextAugmenter:
    """Callable on a batch or a scalar of strings; a no-op when every rate is zero."""

    def __init__(self, deletion=0.0, swap=0.0, synonyms=False, synonym_rate=0.5, seed=None):
        self.deletion = keras_hub.layers.RandomDeletion(deletion, dtype="string", seed=seed) if deletion else None
        self.swap = keras_hub.layers.RandomSwap(swap, dtype="string", seed=seed) if swap else None
        self.synonym_rate = synonym_rate if synonyms else 0.0
        if synonyms:
            keys = list(SYNONYMS)
            values = ["|".join(SYNONYMS[k]) for k in keys]
            self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value="")

    @property
    def active(self):
        return bool(self.deletion or self.swap or self.synonym_rate)

    @staticmethod
    def vocabulary_words():
        """Words the augmenter may introduce; add them to the text a vocabulary is learnt from."""
        return sorted({w for alternatives in SYNONYMS.values() for w in alternatives})

    def _synonyms(self, words):
        flat = words.flat_values
        found = self.table.lookup(flat)
        candidates = tf.strings.split(found, "|")
        counts = candidates.row_lengths()
        pick = tf.cast(tf.floor(tf.random.uniform(tf.shape(flat)) * tf.cast(tf.maximum(counts, 1), tf.float32)), tf.int64)
        values = tf.concat([candidates.values, [""]], axis=0)  # sentinel keeps the gather valid when nothing matches
        chosen = tf.gather(values, tf.minimum(candidates.row_starts() + pick, tf.size(values, tf.int64) - 1))
        replace = (found != "") & (tf.random.uniform(tf.shape(flat)) < self.synonym_rate)
        return words.with_flat_values(tf.where(replace, chosen, flat))

    def __call__(self, texts):
        if not self.active:
            return texts
        # keras-hub's layers take their pure-Python path when eager; the graph path is the one tf.data runs.
        return self._augment(tf.convert_to_tensor(texts))

    @tf.function(reduce_retracing=True)
    def _augment(self, texts):
        scalar = texts.shape.rank == 0
        words = tf.strings.split(tf.reshape(texts, [-1]))
        if self.synonym_rate:
            words = self._synonyms(words)
        if self.deletion is not None:
            words = self.deletion(words)
        if self.swap is not None:
            words = self.swap(words)
        joined = tf.strings.reduce_join(words, axis=-1, separator=" ")
        return joined[0] if scalar else tf.reshape(joined, tf.shape(texts))
