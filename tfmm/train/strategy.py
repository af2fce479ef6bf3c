"""Picks the `tf.distribute` strategy: from the machine, or from `train.strategy` / `--strategy`."""

import json
import os

import tensorflow as tf

from tfmm.errors import TfmmError

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def _tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        config["cluster"]
        config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise TfmmError(f"TF_CONFIG is not valid (needs cluster and task.type/index): {error}") from None
    return config


def choose_strategy(name="auto"):
    """auto: MultiWorkerMirrored when TF_CONFIG names a cluster, Mirrored with several GPUs, else default.

    Call it before other TensorFlow work in the process (see the comment below).

    `mirrored` on a machine without GPUs mirrors over the logical CPU devices (tests
    split the CPU into two with `tf.config.set_logical_device_configuration`).
    """
    if name not in STRATEGIES:
        raise TfmmError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    if name == "auto":
        # TF_CONFIG first: a multi-worker strategy must be made before anything starts the TF runtime
        # (listing devices does), else "Collective ops must be configured at program startup".
        if _tf_config():
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        _tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief():
    """Whether this process writes checkpoints, logs and exports (worker 0, or no cluster)."""
    config = _tf_config()
    if not config:
        return True
    task = config["task"]
    return task["type"] == "chief" or (task["type"] == "worker" and int(task["index"]) == 0 and "chief" not in config["cluster"])
