"""The one tf.data pipeline every app uses.

Order: (shard) → decode (parallel, done by the source) → cache → shuffle → per-example
map (random choices, e.g. which caption) → batch → per-batch map (augment) → prefetch.
Apps supply only the two maps, which get a seed by stream position for their stateless random
ops. Parallel maps keep their order, so with a seed the n-th batch is the same in every run,
augmentation included (resuming a run relies on it).
"""

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def build_pipeline(dataset, batch_size, *, training, example_fn=None, batch_fn=None, cache=True,
                   shuffle_buffer=10000, seed=None, shard=None, drop_remainder=None, repeat=False):
    """Returns a batched, prefetched dataset.

    example_fn: `(example, seed) -> example`, where `seed` is a shape-[2] int64 tensor
    for `tf.random.stateless_*` ops, drawn from `seed` by stream position.
    batch_fn: `(batch, seed) -> batch`, the seed drawn the same way by batch position (augmentation).
    shard: `(num_shards, index)` for multi-worker input pipelines, so that each example
    goes to exactly one worker in an epoch.
    repeat: an endless stream of reshuffled epochs. A freshly built stream gives the same
    n-th batch every time (shuffle and per-example seeds derive from `seed`), which is
    what lets a resumed run skip to its step; build a new one for every iterator you need,
    since a dataset's shuffle seeds advance with each iterator it makes.
    """
    if shard is not None:
        num_shards, index = shard
        dataset = dataset.shard(num_shards, index)
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if example_fn is not None:
        seeds = tf.data.Dataset.random(seed=seed or 0).batch(2, drop_remainder=True)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(example_fn, num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=training if drop_remainder is None else drop_remainder,
                            num_parallel_calls=AUTOTUNE)
    if batch_fn is not None:
        seeds = tf.data.Dataset.random(seed=(seed or 0) + 1).batch(2, drop_remainder=True)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(batch_fn, num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    # Sharding is explicit above; Keras must not shard a second time under multi-worker strategies.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(AUTOTUNE)


def with_known_length(dataset):
    """`dataset` with its number of batches known (counted once if tf.data cannot tell, as after a filter):
    Keras warns "Your input ran out of data" after every validation pass over a dataset of unknown length."""
    count = int(dataset.cardinality().numpy())
    if count < 0:
        count = sum(1 for _ in dataset)
    return dataset.apply(tf.data.experimental.assert_cardinality(count))
