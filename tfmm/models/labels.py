"""Class names ↔ ids in TensorFlow ops, without lookup-table resources (so preprocessors stay plain
layers that serialise by config)."""

import tensorflow as tf


def names_to_ids(names, vocabulary):
    """Strings (...) → int32 ids into `vocabulary`, -1 where a name is not in it."""
    names = tf.convert_to_tensor(names, tf.string)
    matches = tf.equal(names[..., None], tf.constant(list(vocabulary), tf.string))
    return tf.where(tf.reduce_any(matches, axis=-1), tf.argmax(tf.cast(matches, tf.int32), axis=-1, output_type=tf.int32), -1)


def ids_to_names(ids, vocabulary):
    return tf.gather(tf.constant(list(vocabulary), tf.string), ids)
