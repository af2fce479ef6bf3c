"""Configs are data: dataclasses, TOML files, `--set section.key=value` overrides.

- Unknown keys are errors naming the key and the file (or `--set`).
- Every range and choice is checked as a value is read, and cross-field rules (`validate`
  methods) right after, so a wrong config fails before any data is read, in one line naming
  the key and the value.
- A *variant* (an encoder, a fusion, a decoder, a loss) lives in a section of its own whose
  fields depend on the chosen name: `[model.fusion] name = "cross_attention"  num_heads = 4`.
  A field the chosen variant does not take is an error. `--set model.fusion=co_attention`
  switches the variant, keeping the fields both variants share (the width, the dropout).

The resolved config is written beside every checkpoint and export (`save_config`) and reads
back with `load_config`, so an export can be rebuilt from it.
"""

import copy
import dataclasses
import json
import tomllib
import typing
from pathlib import Path

from tfmm.errors import TfmmError

# ------------------------------------------------------------------------------------ field rules


def _rule(default, check, **field):
    if callable(default):
        return dataclasses.field(default_factory=default, metadata={"check": check}, **field)
    return dataclasses.field(default=default, metadata={"check": check}, **field)


def positive(default):
    """A size or count: > 0."""
    return _rule(default, lambda v: None if v > 0 else "must be above 0")


def at_least(minimum, default):
    return _rule(default, lambda v: None if v >= minimum else f"must be at least {minimum}")


def between(low, high, default, high_open=True):
    """low ≤ value < high (≤ high when `high_open` is False)."""
    bracket = ")" if high_open else "]"

    def check(value):
        inside = low <= value < high if high_open else low <= value <= high
        return None if inside else f"must be in [{low}, {high}{bracket}"

    return _rule(default, check)


def above_zero_up_to(high, default):
    return _rule(default, lambda v: None if 0 < v <= high else f"must be in (0, {high}]")


def auto_or_bool(default="auto"):
    """true, false, or "auto": the app turns it on where the data allows it (see the field's comment)."""
    return _rule(default, lambda v: None if isinstance(v, bool) or v == "auto" else 'must be true, false or "auto"')


def one_of(choices, default):
    choices = tuple(choices)
    return _rule(default, lambda v: None if v in choices else f"must be one of {', '.join(map(str, choices))}")


def each_one_of(choices, default):
    choices = tuple(choices)

    def check(values):
        wrong = [v for v in values if v not in choices]
        return f"has {wrong}; valid: {', '.join(choices)}" if wrong else None

    return _rule(default, check)


def variant(registry, name, **values):
    """A field holding one variant of `registry` (default `name`, with `values` overriding its defaults)."""
    return dataclasses.field(default_factory=lambda: registry.options(name)(**values), metadata={"variant": registry})


# ------------------------------------------------------------------------------- shared sections


@dataclasses.dataclass
class ImageAugmentConfig:
    """Training-time image augmentation (Keras 3 layers); all off means images are used as they are."""

    random_crop: float = between(0, 1, 0.0)  # fraction of the side that may be cropped away (then resized back)
    flip: bool = False  # horizontal flips; off by default since captions say "left of"
    rotation: float = between(0, 0.5, 0.0)  # max rotation as a fraction of a full turn
    color_jitter: float = between(0, 1, 0.0, high_open=False)  # brightness/contrast/saturation strength
    # Batch mixing for tasks with class labels (classify): the Beta α of each; 0 = off; both on = either per batch.
    mixup: float = at_least(0.0, 0.0)
    cutmix: float = at_least(0.0, 0.0)


@dataclasses.dataclass
class TextAugmentConfig:
    """Training-time text augmentation on raw captions (keras-hub layers)."""

    deletion: float = between(0, 1, 0.0)  # probability of deleting each word
    swap: float = between(0, 1, 0.0)  # probability of swapping a neighbouring word pair
    synonyms: bool = False  # replace words from the built-in synonym list


@dataclasses.dataclass
class DataConfig:
    # "shapes" (the built-in TFDS dataset), or a path: a folder with captions.jsonl/.csv,
    # a COCO-style captions .json, or a TFRecord file pattern written by tools/prepare_data.py.
    source: str = "shapes"
    shapes_config: str = one_of(("default", "small", "tiny"), "default")  # TFDS builder config of tfmm_shapes
    data_dir: str = ""  # TFDS data directory; empty = TFDS's default (~/tensorflow_datasets)
    image_size: int = at_least(8, 64)
    batch_size: int = positive(128)  # the global batch, split among replicas and workers
    shuffle_buffer: int = positive(10000)
    cache: bool = True
    validation_fraction: float = between(0, 0.5, 0.1)  # user data without split files: validation and test each
    strict: bool = False  # fail on the first corrupt/missing image instead of skipping it


STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


@dataclasses.dataclass
class TrainConfig:
    epochs: int = positive(20)
    steps_per_epoch: int = at_least(0, 0)  # 0 = one pass over the training data
    learning_rate: float = _rule(1e-3, lambda v: None if v > 0 else "must be above 0")
    weight_decay: float = at_least(0, 0.05)
    warmup_fraction: float = between(0, 1, 0.05)  # share of all steps spent warming up
    clipnorm: float = at_least(0, 1.0)  # 0 disables gradient clipping
    adam_beta_1: float = between(0, 1, 0.9)  # Adam's first-moment decay (GANs train better with less momentum)
    # Gradients of this many steps are averaged into one update: an effective batch of data.batch_size × this
    # on a small machine. Steps, epochs and backups still count batches; a contrastive loss still sees
    # data.batch_size negatives per step.
    accumulation_steps: int = positive(1)
    mixed_precision: bool = False  # mixed_bfloat16 on CPU/TPU, mixed_float16 (loss scaling) on GPU
    # "bfloat16": a float32 model whose matmuls and convolutions run in bfloat16, everything else in float32
    # (tfmm/train/matmul_precision.py; CPUs with AMX or AVX-512 BF16); excludes mixed_precision
    matmul_precision: str = one_of(("float32", "bfloat16"), "float32")
    jit_compile: bool = False  # the whole step compiled by XLA
    # XLA kernels for the element-wise work between matmuls (tfmm/train/xla_fusion.py): on, off, or auto (on
    # for CPUs with AMX, where it was measured faster); "on" excludes jit_compile
    xla_fusion: str = one_of(("off", "on", "auto"), "off")
    strategy: str = one_of(STRATEGIES, "auto")
    early_stopping_patience: int = at_least(0, 0)  # epochs without val improvement; 0 = off
    backup_every_steps: int = at_least(0, 0)  # step-level backup interval; 0 = at epoch ends
    seed: int = 0
    deterministic: bool = False  # TensorFlow op determinism: bit-reproducible runs (slower)
    output_dir: str = "runs"

    def validate(self, root):
        if self.jit_compile and self.xla_fusion == "on":
            raise TfmmError("train.jit_compile and train.xla_fusion = \"on\" exclude each other: jit_compile compiles "
                            "the whole step with XLA, xla_fusion only its element-wise ops; turn one of them off")
        if self.mixed_precision and self.matmul_precision == "bfloat16":
            raise TfmmError('train.matmul_precision = "bfloat16" and train.mixed_precision = true exclude each other: '
                            "mixed precision already runs the matmuls (and everything else) in bfloat16; pick one")


QUANTIZATIONS = ("float32", "dynamic_int8", "int8")


@dataclasses.dataclass
class ParityGate:
    """The least parity with the Keras model a `.tflite` file needs to ship, per quantization. The measure
    is the app's: min cosine of the embeddings (retrieval), answer agreement (VQA), the least agreement
    over tasks (classify), greedy-caption agreement (caption), share of pixels within 8/255 (generate), share of
    mask pixels that match (segment)."""

    float32: float = between(0.0, 1.0, 0.99, high_open=False)
    dynamic_int8: float = between(0.0, 1.0, 0.9, high_open=False)
    int8: float = between(0.0, 1.0, 0.9, high_open=False)
    strict: bool = False  # a file below its threshold fails the export (nothing is written) instead of being left out


@dataclasses.dataclass
class ExportConfig:
    name: str = ""  # model name under saved_models/; empty = the app's name
    base_dir: str = "saved_models"
    tflite: bool = True
    tflite_quantization: list = each_one_of(QUANTIZATIONS, lambda: list(QUANTIZATIONS))
    representative_examples: int = positive(128)
    parity: ParityGate = dataclasses.field(default_factory=ParityGate)


@dataclasses.dataclass
class SamplingConfig:
    """How every autoregressive decoder samples (captions, image tokens): one meaning everywhere."""

    temperature: float = _rule(1.0, lambda v: None if v > 0 else "must be above 0")
    top_k: int = at_least(0, 0)  # keep the k most likely tokens; 0 = keep every token
    top_p: float = above_zero_up_to(1, 1.0)  # nucleus: the smallest set reaching this probability; 1 = all
    seed: int = 0


def app_config(name, data, model, train=None, export=None, quantizations=QUANTIZATIONS, **sections):
    """An app's config class: its `data` and `model` sections (dataclasses), its own further `sections`
    ({name: dataclass or default instance}), then `train` and `export` with the app's defaults (instances).
    `quantizations`: the TFLite quantizations the app's models convert to; others are config errors."""

    def factory(value):
        return (lambda: copy.deepcopy(value)) if not isinstance(value, type) else value

    parts = {"data": data, "model": model, **sections, "train": train or TrainConfig(), "export": export or ExportConfig()}
    fields = [(key, value if isinstance(value, type) else type(value), dataclasses.field(default_factory=factory(value)))
              for key, value in parts.items()]

    def validate(self, root):
        unsupported = [q for q in self.export.tflite_quantization if q not in quantizations]
        if unsupported:
            raise TfmmError(f"export.tflite_quantization {unsupported}: this app's models convert to "
                            f"{', '.join(quantizations)}")

    return dataclasses.make_dataclass(name, fields, namespace={"validate": validate, "__module__": model.__module__})


# ------------------------------------------------------------------------------------------ loading


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


def _check(field, value, name, source):
    rule = field.metadata.get("check")
    problem = rule(value) if rule else None
    if problem:
        raise TfmmError(f"{source}: {name} {problem}, got {value!r}")
    return value


def _merge_variant(current, value, registry, source, name):
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise TfmmError(f"{source}: {name} must be a {registry.kind} name or a table, got {value!r}")
    value = dict(value)
    chosen = value.pop("name", current.name)
    options = registry.options(chosen, name)
    takes = [f.name for f in dataclasses.fields(options) if f.name != "name"]
    if chosen != current.name:  # a new variant keeps what both take (the width, the dropout, ...)
        current = options(**{key: getattr(current, key) for key in takes if hasattr(current, key)})
    for key in value:
        if key not in takes:
            raise TfmmError(f"{source}: {name}.{key}: {registry.kind} {chosen!r} does not take {key!r}; "
                            f"it takes {', '.join(takes) or 'no options'}")
    return merge(current, value, source, name + ".")


def merge(config, data, source="config", prefix=""):
    """A copy of dataclass `config` with the nested dict `data` applied; unknown keys are errors."""
    if not isinstance(data, dict):
        raise TfmmError(f"{source}: section {prefix.rstrip('.') or '<root>'} must be a table")
    hints = typing.get_type_hints(type(config))
    fields = {f.name: f for f in dataclasses.fields(config)}
    values = {}
    for key, value in data.items():
        name = prefix + key
        if key not in fields:
            valid = ", ".join(f for f in fields if f != "name")
            raise TfmmError(f"{source}: unknown config key {name!r}; valid keys here: {valid}")
        field = fields[key]
        if field.metadata.get("variant") is not None:
            values[key] = _merge_variant(getattr(config, key), value, field.metadata["variant"], source, name)
        elif dataclasses.is_dataclass(hints[key]):
            values[key] = merge(getattr(config, key), value, source, name + ".")
        else:
            values[key] = _check(field, _coerce(value, hints[key], f"{name} in {source}"), name, source)
    return dataclasses.replace(copy.deepcopy(config), **values)


def validate(config, root=None, prefix=""):
    """Runs every section's `validate(root)` (cross-field rules), deepest first."""
    root = root if root is not None else config
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            validate(value, root, f"{prefix}{field.name}.")
    if hasattr(config, "validate"):
        config.validate(root)
    return config


def to_dict(config):
    return dataclasses.asdict(config)


def given_keys(data, prefix=""):
    """The dotted keys a TOML table sets: {"data": {"augment": {"flip": true}}} → ["data.augment.flip"]."""
    keys = []
    for key, value in data.items():
        keys += given_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def differences(old, new, prefix=""):
    """["section.key: old → new", ...] between two configs (or their dicts)."""
    old = to_dict(old) if dataclasses.is_dataclass(old) else old
    new = to_dict(new) if dataclasses.is_dataclass(new) else new
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found.extend(differences(a, b, f"{prefix}{key}."))
        elif a != b:
            found.append(f"{prefix}{key}: {a!r} → {b!r}")
    return found


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
            if isinstance(node.get(part), str):  # `model.fusion=x` then `model.fusion.num_heads=2`
                node[part] = {"name": node[part]}
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TfmmError(f"--set {key}: {part} is not a section")
        if isinstance(node.get(parts[-1]), dict) and isinstance(value, str):
            node[parts[-1]]["name"] = value  # `model.fusion.num_heads=2` then `model.fusion=x`: both apply
        else:
            node[parts[-1]] = value
    return data


def read_toml(path):
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise TfmmError(f"{path}: invalid TOML: {error}") from None


def load_config(cls, path=None, overrides=(), base=None):
    """`base` (default: the defaults of `cls`), then the TOML file at `path`, then `--set` overrides,
    then the cross-field checks."""
    config = base if base is not None else cls()
    if path:
        config = merge(config, read_toml(path), str(path))
    if overrides:
        config = merge(config, apply_overrides({}, overrides), "--set")
    return validate(config)


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
    from tfmm.files import atomic_write

    with atomic_write(path) as tmp:
        Path(tmp).write_text(dumps_toml(to_dict(config)))
