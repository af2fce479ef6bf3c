"""Text augmentation on raw strings inside tf.data, stateless: random deletion, neighbour swaps, synonyms.

Every draw comes from the batch's seed (see `tfmm.data.augment`), so a resumed run augments exactly
as an uninterrupted one. keras-hub's `RandomDeletion` / `RandomSwap` draw from a generator whose state
no backup holds, which is why the same operations are written here on ragged words.
"""

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
    """`augmenter(texts, seed)` on a batch or a scalar of strings; a no-op when every rate is zero.

    deletion: each word is dropped with this probability (a caption keeps at least its first word);
    swap: each word trades places with its right neighbour with this probability (pairs never overlap);
    synonyms: words of `SYNONYMS` are replaced by one of their alternatives with `synonym_rate`.
    """

    def __init__(self, deletion=0.0, swap=0.0, synonyms=False, synonym_rate=0.5):
        self.deletion, self.swap = deletion, swap
        self.synonym_rate = synonym_rate if synonyms else 0.0
        # A comparison with the few keys, not a lookup table: a table in a tf.data function makes TensorFlow
        # 2.21 serialise the pipeline under op determinism and log a spurious NodeDef error.
        self.keys = list(SYNONYMS)
        self.alternatives = ["|".join(SYNONYMS[k]) for k in self.keys]

    @property
    def active(self):
        return bool(self.deletion or self.swap or self.synonym_rate)

    @staticmethod
    def vocabulary_words():
        """Words the augmenter may introduce; add them to the text a vocabulary is learnt from."""
        return sorted({w for alternatives in SYNONYMS.values() for w in alternatives})

    def __call__(self, texts, seed):
        if not self.active:
            return texts
        texts = tf.convert_to_tensor(texts)
        seed = tf.cast(seed, tf.int64)
        words = tf.strings.split(tf.reshape(texts, [-1]))
        draw = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(5)]
        if self.synonym_rate:
            words = self._synonyms(words, draw[0], draw[1])
        if self.deletion:
            words = self._delete(words, draw[2])
        if self.swap:
            words = self._swap(words, draw[3], draw[4])
        joined = tf.strings.reduce_join(words, axis=-1, separator=" ")
        return tf.reshape(joined, tf.shape(texts))

    def _synonyms(self, words, pick_seed, replace_seed):
        flat = words.flat_values
        matches = tf.equal(flat[:, None], tf.constant(self.keys)[None, :])
        found = tf.where(tf.reduce_any(matches, -1),
                         tf.gather(tf.constant(self.alternatives), tf.argmax(tf.cast(matches, tf.int32), -1)), "")
        candidates = tf.strings.split(found, "|")
        counts = candidates.row_lengths()
        uniform = tf.random.stateless_uniform(tf.shape(flat), pick_seed)
        pick = tf.cast(tf.floor(uniform * tf.cast(tf.maximum(counts, 1), tf.float32)), tf.int64)
        values = tf.concat([candidates.values, [""]], axis=0)  # sentinel keeps the gather valid when nothing matches
        chosen = tf.gather(values, tf.minimum(candidates.row_starts() + pick, tf.size(values, tf.int64) - 1))
        replace = (found != "") & (tf.random.stateless_uniform(tf.shape(flat), replace_seed) < self.synonym_rate)
        return words.with_flat_values(tf.where(replace, chosen, flat))

    def _delete(self, words, seed):
        keep = tf.random.stateless_uniform(tf.shape(words.flat_values), seed) >= self.deletion
        keep = words.with_flat_values(keep)
        first = tf.ragged.range(words.row_lengths()) == 0
        keep = tf.logical_or(keep, first & tf.expand_dims(tf.reduce_sum(tf.cast(keep, tf.int32), -1) == 0, -1))
        return tf.ragged.boolean_mask(words, keep)

    def _swap(self, words, swap_seed, offset_seed):
        lengths = words.row_lengths()
        position = tf.ragged.range(lengths).flat_values
        row_length = tf.repeat(lengths, lengths)
        offset = tf.repeat(tf.random.stateless_uniform(tf.shape(lengths), offset_seed, 0, 2, dtype=tf.int64), lengths)
        chosen = tf.random.stateless_uniform(tf.shape(position), swap_seed) < self.swap
        swap = chosen & (tf.math.floormod(position - offset, 2) == 0) & (position < row_length - 1)
        step = tf.cast(swap, tf.int64)
        previous = tf.concat([[0], step[:-1]], 0)  # the last word of a row never swaps: no leak across rows
        index = tf.range(tf.size(step, tf.int64), dtype=tf.int64) + step - previous
        return words.with_flat_values(tf.gather(words.flat_values, index))
