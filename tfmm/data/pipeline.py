"""The one tf.data pipeline every app uses.

Order: (shard) → decode (parallel, done by the source) → cache → shuffle → per-example
map (random choices, e.g. which caption) → batch → per-batch map (tokenise, augment)
→ prefetch. Apps supply only the two maps.
"""

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def build_pipeline(dataset, batch_size, *, training, example_fn=None, batch_fn=None, cache=True,
                   shuffle_buffer=10000, seed=None, shard=None, drop_remainder=None):
    """Returns a batched, prefetched dataset.

    shard: `(num_shards, index)` for multi-worker input pipelines, so that each example
    goes to exactly one worker in an epoch.
    """
    if shard is not None:
        num_shards, index = shard
        dataset = dataset.shard(num_shards, index)
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if example_fn is not None:
        dataset = dataset.map(example_fn, num_parallel_calls=AUTOTUNE, deterministic=not training)
    dataset = dataset.batch(batch_size, drop_remainder=training if drop_remainder is None else drop_remainder,
                            num_parallel_calls=AUTOTUNE, deterministic=not training)
    if batch_fn is not None:
        dataset = dataset.map(batch_fn, num_parallel_calls=AUTOTUNE, deterministic=not training)
    options = tf.data.Options()
    # Sharding is explicit above; Keras must not shard a second time under multi-worker strategies.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(AUTOTUNE)
