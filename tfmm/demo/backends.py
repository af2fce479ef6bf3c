"""Where the demo's answers come from: the exported SavedModels on disk, or a running model server.

Both give `available(app)` and `call(app, signature, **inputs) -> {output: numpy array}`, so the page
never knows which it talks to. The server is reached over gRPC (TF Serving's `PredictionService`, which
`tfmm.serving` implements): tensors travel as protos, so PNG bytes come back intact.
"""

import threading
from pathlib import Path

import numpy as np

from tfmm.errors import TfmmError, explain_graph_error
from tfmm.export.saved_model import latest_version_dir, versions

# The command that makes each app's export, for a tab whose model is missing.
EXPORT_COMMANDS = {
    "retrieval": "python -m tfmm.apps.retrieval",
    "vqa": "python -m tfmm.apps.vqa",
    "caption": "python -m tfmm.apps.caption",
    "classify": "python -m tfmm.apps.classify",
    "generate": "python -m tfmm.apps.generate",
}


class ModelNotExported(TfmmError):
    def __init__(self, app, where):
        command = EXPORT_COMMANDS.get(app, f"python -m tfmm.apps.{app}")
        super().__init__(f"no {app} model in {where}: `{command}` trains and exports one "
                         f"(or `{command} export --model runs/{app}/<run>` exports a trained run)")


class SavedModels:
    """The latest version of `<base_dir>/<app>/`, loaded on first use (TF Serving's layout)."""

    def __init__(self, base_dir="saved_models"):
        self.base_dir = Path(base_dir)
        self._loaded, self._lock = {}, threading.Lock()

    def where(self):
        return str(self.base_dir)

    def available(self, app):
        return bool(versions(self.base_dir / app))

    def _model(self, app):
        import tensorflow as tf

        with self._lock:
            if app not in self._loaded:
                if not self.available(app):
                    raise ModelNotExported(app, self.base_dir)
                self._loaded[app] = tf.saved_model.load(str(latest_version_dir(self.base_dir / app)))
            return self._loaded[app]

    def call(self, app, signature, **inputs):
        import tensorflow as tf

        function = self._model(app).signatures[signature]
        specs = function.structured_input_signature[1]
        tensors = {name: tf.constant(value, dtype=specs[name].dtype) for name, value in inputs.items()}
        try:
            outputs = function(**tensors)
        except tf.errors.InvalidArgumentError as error:
            raise TfmmError(explain_graph_error(error.message)) from None
        return {name: value.numpy() for name, value in outputs.items()}


class ServedModels:
    """Models on a TF Serving–compatible server (`tfmm.serving` or TF Serving), by gRPC address."""

    def __init__(self, address, timeout=60.0):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.address = address.removeprefix("grpc://")
        self.timeout = timeout
        channel = grpc.insecure_channel(self.address)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        self._status = model_service_pb2_grpc.ModelServiceStub(channel)

    def where(self):
        return f"the server at {self.address}"

    def available(self, app):
        import grpc
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = app
        try:
            reply = self._status.GetModelStatus(request, timeout=self.timeout)
        except grpc.RpcError:
            return False
        return any(v.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE for v in reply.model_version_status)

    def call(self, app, signature, **inputs):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = app, signature
        for name, value in inputs.items():
            array = np.asarray(value, dtype=object if _is_text(value) else None)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        try:
            reply = self._predict.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise ModelNotExported(app, self.where()) from None
            raise TfmmError(f"{app}/{signature}: {error.details() or error.code()}") from None  # the server explained it
        return {name: tf.make_ndarray(proto) for name, proto in reply.outputs.items()}


def _is_text(value):
    first = value
    while isinstance(first, (list, tuple, np.ndarray)) and len(first):
        first = first[0]
    return isinstance(first, (str, bytes))


def open_models(models_dir=None, server=None):
    return ServedModels(server) if server else SavedModels(models_dir or "saved_models")
