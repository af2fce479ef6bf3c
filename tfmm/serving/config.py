"""TF Serving's config files: `ModelServerConfig` (text proto) and `BatchingParameters`."""

import dataclasses
import re
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfmm.errors import TfmmError


def parse_model_config_file(path):
    """Parses `--model_config_file` (text-format `ModelServerConfig`); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"model config file not found: {path}")
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(path.read_text(), config)
    except text_format.ParseError as error:
        raise TfmmError(f"Error parsing text-format tensorflow.serving.ModelServerConfig in {path}: {error}") from None
    return check_model_config(config, str(path))


def single_model_config(name, base_path):
    """The config `--model_name` + `--model_base_path` stand for."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = name, str(base_path), "tensorflow"
    return check_model_config(config, "--model_base_path")


def check_model_config(config, source):
    if not config.HasField("model_config_list"):
        raise TfmmError(f"{source}: only model_config_list is supported")
    names = set()
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise TfmmError(f"{source}: every model needs a name and a base_path")
        if model.name in names:
            raise TfmmError(f"{source}: model {model.name!r} is configured twice")
        if model.model_platform not in ("", "tensorflow"):
            raise TfmmError(f"{source}: model {model.name}: unsupported platform {model.model_platform!r}")
        for label in model.version_labels:
            if not re.fullmatch(r"[a-zA-Z0-9_]+", label):
                raise TfmmError(f"{source}: model {model.name}: invalid version label {label!r}")
        names.add(model.name)
    return config


@dataclasses.dataclass
class BatchingParameters:
    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 1000
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False


def parse_batching_parameters(path):
    """Parses the text-format `BatchingParameters` file (`max_batch_size { value: 128 }` ...).

    The tensorflow-serving-api package has no Python module for this proto, so its
    simple `name { value: X }` form is read here; unknown fields are errors.
    """
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"batching parameters file not found: {path}")
    text = re.sub(r"#.*", "", path.read_text())
    params = BatchingParameters()
    fields = {f.name for f in dataclasses.fields(BatchingParameters)}
    sizes = []
    consumed = 0
    for match in re.finditer(r"(\w+)\s*:?\s*\{\s*value\s*:\s*([^}\s]+)\s*\}|(\w+)\s*:\s*([^\s{}]+)", text):
        if text[consumed:match.start()].strip():
            raise TfmmError(f"{path}: cannot parse {text[consumed:match.start()].strip()!r}")
        consumed = match.end()
        name, value = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        if name in ("thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size"):
            continue  # accepted for compatibility; not used by this server
        if name not in fields:
            raise TfmmError(f"{path}: unknown batching parameter {name!r}")
        if name == "allowed_batch_sizes":
            sizes.append(int(value))
        elif name == "pad_variable_length_inputs":
            params.pad_variable_length_inputs = value.lower() == "true"
        else:
            try:
                setattr(params, name, int(value))
            except ValueError:
                raise TfmmError(f"{path}: {name} must be an integer, got {value!r}") from None
    if text[consumed:].strip():
        raise TfmmError(f"{path}: cannot parse {text[consumed:].strip()!r}")
    params.allowed_batch_sizes = tuple(sizes)
    if params.max_batch_size < 1 or params.num_batch_threads < 1:
        raise TfmmError(f"{path}: max_batch_size and num_batch_threads must be at least 1")
    return params


@dataclasses.dataclass
class SSLConfig:
    """TF Serving's `--ssl_config_file` (text-format `tensorflow.serving.SSLConfig`): PEM texts, not file names."""

    server_key: str
    server_cert: str
    custom_ca: str = ""  # with client_verify: the CA that signs client certificates
    client_verify: bool = False


def _ssl_config_message():
    """The SSLConfig message class, described here: the tensorflow-serving-api wheel ships no `ssl_config_pb2`."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name="tfmm/ssl_config.proto", package="tensorflow.serving")
    message = proto.message_type.add(name="SSLConfig")
    string, boolean = descriptor_pb2.FieldDescriptorProto.TYPE_STRING, descriptor_pb2.FieldDescriptorProto.TYPE_BOOL
    for number, (name, kind) in enumerate((("server_key", string), ("server_cert", string), ("custom_ca", string),
                                           ("client_verify", boolean)), start=1):
        message.field.add(name=name, number=number, type=kind, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.SSLConfig"))


def parse_ssl_config_file(path):
    path = Path(path)
    if not path.is_file():
        raise TfmmError(f"SSL config file not found: {path}")
    message = _ssl_config_message()()
    try:
        text_format.Parse(path.read_text(), message)
    except text_format.ParseError as error:
        raise TfmmError(f"Error parsing text-format tensorflow.serving.SSLConfig in {path}: {error}") from None
    if not message.server_key.strip() or not message.server_cert.strip():
        raise TfmmError(f"{path}: server_key and server_cert (PEM text) are both required")
    if message.client_verify and not message.custom_ca.strip():
        raise TfmmError(f"{path}: client_verify needs custom_ca, the CA that signs the clients' certificates")
    return SSLConfig(message.server_key, message.server_cert, message.custom_ca, message.client_verify)
