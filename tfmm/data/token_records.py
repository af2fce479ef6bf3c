"""Image token grids (from a trained VQ-VAE) with their captions, as TFRecord shards that stream.

Stage 2 of the text-to-image app trains on these instead of images: the VQ-VAE runs once per
image, and a training set larger than memory streams from disk. Shards are written under
temporary names and renamed when complete, so a reader never sees half a shard.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from tfmm.errors import TfmmError

SPEC = {"captions": tf.io.VarLenFeature(tf.string), "tokens": tf.io.VarLenFeature(tf.int64),
        "objects": tf.io.FixedLenFeature([], tf.string, default_value="")}


def write_token_records(batches, folder, shard_size=4096):
    """`batches`: iterable of (captions [n lists of str], tokens int (n, g, g), objects [n str]) → shards in `folder`;
    returns (file pattern, examples written)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, shard, writer, partial = 0, 0, None, None

    def close():
        if writer is not None:
            writer.close()
            partial.rename(partial.with_suffix(""))

    for captions, tokens, objects in batches:
        for caption_list, grid, thing in zip(captions, np.asarray(tokens), objects):
            if written % shard_size == 0:
                close()
                partial = folder / f"tokens-{shard:05d}.tfrecord.partial"
                writer = tf.io.TFRecordWriter(str(partial))
                shard += 1
            feature = {
                "captions": tf.train.Feature(bytes_list=tf.train.BytesList(value=[c.encode() for c in caption_list])),
                "tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=grid.reshape(-1).tolist())),
                "objects": tf.train.Feature(bytes_list=tf.train.BytesList(value=[thing.encode()])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            written += 1
    close()
    if not written:
        raise TfmmError(f"no examples to write to {folder}")
    return str(folder / "tokens-*.tfrecord"), written


def read_token_records(pattern):
    """`{"captions": string (n,), "tokens": int32 (g·g,), "objects": string}` per example, in file order."""
    files = sorted(tf.io.gfile.glob(str(pattern)))
    if not files:
        raise TfmmError(f"no token records match {pattern}")

    def parse(record):
        example = tf.io.parse_single_example(record, SPEC)
        return {"captions": tf.sparse.to_dense(example["captions"]),
                "tokens": tf.cast(tf.sparse.to_dense(example["tokens"]), tf.int32), "objects": example["objects"]}

    return tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
