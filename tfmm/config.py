"""Configs are data: dataclasses, TOML files, `--set section.key=value` overrides.

Unknown keys are errors that name the key and the file. The resolved config is
written beside every checkpoint and export (`save_config`) and reads back with
`load_config`, so an export can be rebuilt from it.
"""

import dataclasses
import json
import tomllib
import typing
from pathlib import Path

from tfmm.errors import TfmmError


@dataclasses.dataclass
class AugmentConfig:
    """Training-time augmentation; all off means the images are used as they are."""

    random_crop: float = 0.0  # fraction of the side that may be cropped away (then resized back)
    flip: bool = False  # horizontal flips; off by default since captions say "left of"
    rotation: float = 0.0  # max rotation as a fraction of a full turn (keras.layers.RandomRotation)
    color_jitter: float = 0.0  # brightness/contrast/saturation strength, 0..1
    mixup: float = 0.0  # MixUp alpha (classification apps only)
    cutmix: float = 0.0  # CutMix alpha (classification apps only)
    text_deletion: float = 0.0  # probability of deleting each word
    text_swap: float = 0.0  # probability of swapping a neighbouring word pair
    text_synonyms: bool = False  # replace words from the built-in synonym list


@dataclasses.dataclass
class DataConfig:
    # "shapes" (the built-in TFDS dataset), or a path: a folder with captions.jsonl/.csv,
    # a COCO-style captions .json, or a TFRecord file pattern written by tools/prepare_data.py.
    source: str = "shapes"
    shapes_config: str = "default"  # TFDS builder config of tfmm_shapes: default, small, tiny
    data_dir: str = ""  # TFDS data directory; empty = TFDS's default (~/tensorflow_datasets)
    image_size: int = 64
    batch_size: int = 128
    shuffle_buffer: int = 10000
    cache: bool = True
    validation_fraction: float = 0.1  # for user data without a validation split
    strict: bool = False  # fail on the first corrupt/missing image instead of skipping it
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 20
    steps_per_epoch: int = 0  # 0 = one pass over the training data
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05  # share of all steps spent warming up
    clipnorm: float = 1.0  # 0 disables gradient clipping
    mixed_precision: bool = False  # mixed_bfloat16 on CPU/TPU, mixed_float16 (loss scaling) on GPU
    jit_compile: bool = False  # XLA
    strategy: str = "auto"  # auto, default, mirrored, multi_worker, tpu
    early_stopping_patience: int = 0  # epochs without val improvement; 0 = off
    backup_every_steps: int = 0  # BackupAndRestore step interval; 0 = at epoch ends
    seed: int = 0
    deterministic: bool = False  # TensorFlow op determinism: bit-reproducible runs (slower)
    output_dir: str = "runs"


@dataclasses.dataclass
class ExportConfig:
    name: str = ""  # model name under saved_models/; empty = the app's name
    base_dir: str = "saved_models"
    tflite: bool = True
    tflite_quantization: list = dataclasses.field(default_factory=lambda: ["float32", "dynamic_int8", "int8"])
    representative_examples: int = 128


def _type_name(tp):
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, field):
    """Checks a TOML value against a dataclass field type, naming the field when it does not fit."""
    origin = typing.get_origin(tp) or tp
    if origin is bool:
        if isinstance(value, bool):
            return value
    elif origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif origin is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif origin is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, list):
            return value
    else:
        return value
    raise TfmmError(f"config field {field} must be {_type_name(origin)}, got {value!r}")


def from_dict(cls, data, source="config", prefix=""):
    """Builds dataclass `cls` from nested dicts; unknown keys are errors naming key and source."""
    if not isinstance(data, dict):
        raise TfmmError(f"{source}: section {prefix.rstrip('.') or '<root>'} must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = prefix + key
        if key not in fields:
            raise TfmmError(f"{source}: unknown config key {name!r}; valid keys here: {', '.join(fields)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, source, name + ".")
        else:
            kwargs[key] = _coerce(value, tp, f"{name} in {source}")
    return cls(**kwargs)


def to_dict(config):
    return dataclasses.asdict(config)


def _parse_override(text):
    if "=" not in text:
        raise TfmmError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare words are strings: --set model.image_encoder=vit
    return key, value


def apply_overrides(data, overrides):
    """Applies `section.key=value` strings onto a nested dict (values parsed as TOML)."""
    for text in overrides:
        key, value = _parse_override(text)
        parts = key.split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TfmmError(f"--set {key}: {part} is not a section")
        node[parts[-1]] = value
    return data


def _merge(base, update):
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_config(cls, path=None, overrides=()):
    """Defaults of `cls`, then the TOML file at `path`, then `--set` overrides."""
    data = to_dict(cls())
    source = "defaults"
    if path:
        path = Path(path)
        if not path.is_file():
            raise TfmmError(f"config file not found: {path}")
        try:
            file_data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise TfmmError(f"{path}: invalid TOML: {error}") from None
        # Validate the file on its own so its unknown keys are reported against the file.
        from_dict(cls, file_data, str(path))
        _merge(data, file_data)
        source = str(path)
    if overrides:
        override_data = apply_overrides({}, overrides)
        from_dict(cls, override_data, "--set")
        _merge(data, override_data)
    return from_dict(cls, data, source)


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dumps_toml(data, prefix=""):
    scalars = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    lines = []
    if scalars:
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(scalars)
        lines.append("")
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(dumps_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(lines)


def save_config(config, path):
    """Writes the resolved config as TOML (it loads back with `load_config`)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(dumps_toml(to_dict(config)))
