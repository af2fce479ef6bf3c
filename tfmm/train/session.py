"""The part of training every app shares: strategy, seeds, precision, input sharding, compile, fit, and
the run directory (`config.toml`, the best weights, logs, and the trained model as a preset).

    session = TrainingSession(config)              # first: a multi-worker strategy needs an untouched runtime
    ...build datasets with session.shard...
    task = session.train("vqa", build_task, train_stream, validation, example_count, run_path)
"""

import time
from pathlib import Path

import keras
import tensorflow as tf

from tfmm.config import differences, load_config, save_config
from tfmm.errors import TfmmError
from tfmm.models.presets import PRESET_DIR, from_preset, save_preset
from tfmm.train.fit import BEST_WEIGHTS, fit, make_optimizer
from tfmm.train.matmul_precision import bfloat16_matmuls, check_matmul_precision
from tfmm.train.precision import set_precision
from tfmm.train.strategy import choose_strategy, is_chief
from tfmm.train.xla_fusion import fusion_enabled, xla_fusion


class TrainingSession:
    def __init__(self, config):
        self.config = config
        self.strategy = choose_strategy(config.train.strategy)
        keras.utils.set_random_seed(config.train.seed)
        if config.train.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.policy = set_precision(config.train.mixed_precision)
        check_matmul_precision(config.train.matmul_precision)
        if config.train.accumulation_steps > 1 and self.policy == "mixed_float16":
            raise TfmmError("train.accumulation_steps with mixed_float16 (loss scaling on GPU) is not supported: Keras' "
                            "LossScaleOptimizer hides the accumulating optimizer's step count that resuming needs")
        self.shard = None  # (workers, this worker's index) under a multi-worker strategy
        if self.strategy.extended._in_multi_worker_mode():
            resolver = self.strategy.cluster_resolver
            self.shard = (resolver.cluster_spec().num_tasks("worker"), resolver.task_id)

    @property
    def num_workers(self):
        return self.shard[0] if self.shard else 1

    @property
    def worker_index(self):
        return self.shard[1] if self.shard else 0

    def per_worker_batch(self, global_batch):
        return per_worker_batch(global_batch, self.shard)

    def train(self, task, build_model, train_stream, validation_data, example_count, run_path,
              learning_rate_multipliers=None):
        """Compiles `build_model()` (a `tfmm.models.Task`) under the strategy and fits it on raw batches
        (its preprocessor maps them); on the chief, writes the best weights as the preset
        `run_path/preset` and returns the task loaded from it, elsewhere None.

        `train_stream()` makes a fresh, endless stream whose n-th batch is the same every time
        (so an interrupted run in the same `run_path` resumes exactly); `example_count` is the
        size of this worker's epoch in pipeline examples; `learning_rate_multipliers(model)` may give
        {variable path: factor} for parts that train more slowly (pretrained encoders).
        """
        config = self.config
        batch = self.per_worker_batch(config.data.batch_size)
        if self.shard:
            example_count = len(range(self.worker_index, example_count, self.num_workers))
        steps = config.train.steps_per_epoch or example_count // batch
        if steps == 0:
            raise TfmmError(f"data.batch_size {config.data.batch_size} is larger than the training split ({example_count})")
        # Again here: building the data (a first run generates its TFDS dataset) may have drawn random numbers,
        # and the initial weights must not depend on whether it did.
        keras.utils.set_random_seed(config.train.seed)
        with self.strategy.scope():
            model = build_model()
            multipliers = learning_rate_multipliers(model) if learning_rate_multipliers else None
            model.compile(optimizer=make_optimizer(config.train, steps * config.train.epochs, multipliers),
                          jit_compile=config.train.jit_compile)
        run_path = Path(run_path)
        chief = is_chief()
        fused = fusion_enabled(config.train.xla_fusion, config.train.jit_compile)
        compiled = ", XLA" if config.train.jit_compile else ", XLA fusion" if fused else ""
        matmuls = config.train.matmul_precision == "bfloat16"
        precision = self.policy + (" with bfloat16 matmuls" if matmuls else "")
        print(f"training {task}: {model.count_params():,} parameters, {precision}{compiled}, "
              f"{self.strategy.num_replicas_in_sync} replica(s), {steps} steps × {config.train.epochs} epochs → {run_path}")
        started = time.time()
        with xla_fusion(fused), bfloat16_matmuls(matmuls):
            fit(model, train_stream, validation_data, config.train, run_path, steps,
                worker_index=self.worker_index, num_workers=self.num_workers)
        print(f"trained in {time.time() - started:.0f} s")
        keras.mixed_precision.set_global_policy("float32")
        if not chief:
            return None
        if (run_path / BEST_WEIGHTS).is_file():
            model.load_weights(run_path / BEST_WEIGHTS)
        save_preset(model, run_path / PRESET_DIR)
        print(f"saved the best model as a preset: {run_path / PRESET_DIR}")
        return from_preset(run_path / PRESET_DIR)  # under the float32 policy, as anyone loading it later


def prepare_run_dir(config, run_path, force=False):
    """Writes `config.toml` into a new run directory. An existing run (being resumed, or trained again in
    place) keeps the config it was started with: a different one is refused, naming the keys that differ,
    unless `force`, which records the new config and the change. Only the chief writes."""
    run_path, path = Path(run_path), Path(run_path) / "config.toml"
    if path.is_file():
        changed = differences(load_config(type(config), path), config)
        if not changed:
            return
        if not force:
            raise TfmmError(f"{run_path} was started with another config ({'; '.join(changed)}); resume it with the "
                            "same settings, or pass --force to continue with these")
        print(f"--force: continuing {run_path} with a changed config ({'; '.join(changed)})")
        if is_chief():
            with open(run_path / "config_changes.txt", "a", encoding="utf-8") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} --force: " + "; ".join(changed) + "\n")
    if is_chief():
        run_path.mkdir(parents=True, exist_ok=True)
        save_config(config, path)


def per_worker_batch(global_batch, shard):
    """Each worker's share of the global `data.batch_size` (shard = (workers, index) or None)."""
    workers = shard[0] if shard else 1
    if global_batch % workers:
        raise TfmmError(f"data.batch_size {global_batch} must divide evenly among {workers} workers")
    return global_batch // workers


def count_examples(dataset):
    """The number of examples, counting once when the cardinality is unknown (filtered user data)."""
    count = int(dataset.cardinality().numpy())
    return count if count >= 0 else sum(1 for _ in dataset)
