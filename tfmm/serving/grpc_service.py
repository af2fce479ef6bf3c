"""TF Serving's gRPC API (`PredictionService`, `ModelService`) on the tensorflow-serving-api stubs."""

import logging
import time
from concurrent import futures
from pathlib import Path

import grpc
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfmm.errors import TfmmError
from tfmm.serving import metrics
from tfmm.serving.config import check_model_config
from tfmm.serving.rest import signature_def_map
from tfmm.serving.status import ServingError, internal, invalid

log = logging.getLogger("tfmm.serving")


def _spec(model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label or None
    return model_spec.name, version, label


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, predictor):
        self.predictor = predictor

    def _guard(self, api, name, context, handler):
        started, label = time.perf_counter(), metrics.model_label(self.predictor.manager, name)
        try:
            result = handler()
        except Exception as error:  # noqa: BLE001  (the request fails; the server stays up)
            if not isinstance(error, ServingError):
                log.exception("gRPC %s failed", api)
                error = internal(error)
            metrics.record(label, api, "GRPC", error.code, time.perf_counter() - started)
            context.abort(error.grpc_code, error.message)
        metrics.record(label, api, "GRPC", "OK", time.perf_counter() - started)
        return result

    def Predict(self, request, context):
        def handle():
            name, version, label = _spec(request.model_spec)
            try:
                inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            except Exception as error:
                raise invalid(f"cannot read input tensors: {error}") from None
            servable = self.predictor.manager.resolve(name, version, label)
            remaining = context.time_remaining()  # the client's deadline, if it set one
            signature_name, outputs = self.predictor.predict(
                servable, request.model_spec.signature_name, inputs, list(request.output_filter),
                remaining if remaining is not None and remaining < 1e9 else None)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature_name
            for alias, array in outputs.items():
                response.outputs[alias].CopyFrom(tf.make_tensor_proto(array))
            return response

        return self._guard("predict", request.model_spec.name, context, handle)

    def GetModelMetadata(self, request, context):
        def handle():
            name, version, label = _spec(request.model_spec)
            fields = list(request.metadata_field)
            if "signature_def" not in fields or set(fields) - {"signature_def", "tfmm_parity"}:
                raise invalid("Metadata field signature_def is required; the only other field is tfmm_parity")
            servable = self.predictor.manager.resolve(name, version, label)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(signature_def_map(servable))
            if "tfmm_parity" in fields and servable.parity is not None:  # a google.protobuf.Struct
                response.metadata["tfmm_parity"].Pack(json_format.ParseDict(servable.parity, struct_pb2.Struct()))
            return response

        return self._guard("metadata", request.model_spec.name, context, handle)

    def _unimplemented(self, api, request, context):
        name = request.model_spec.name if hasattr(request, "model_spec") else ""

        def handle():
            raise ServingError("UNIMPLEMENTED", f"{api} needs a {api} SignatureDef (serialized tf.Example input); "
                                                "Keras exports offer predict signatures only")

        return self._guard(api, name, context, handle)

    def Classify(self, request, context):
        return self._unimplemented("classify", request, context)

    def Regress(self, request, context):
        return self._unimplemented("regress", request, context)

    def MultiInference(self, request, context):
        return self._unimplemented("multi_inference", request, context)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """Status for everyone; `HandleReloadConfigRequest` (unload every model, load any path) only when the server
    was started to allow it, and then only for base paths inside `allowed_roots`."""

    def __init__(self, manager, allow_reload=False, allowed_roots=()):
        self.manager, self.allow_reload = manager, allow_reload
        self.allowed_roots = [Path(root).resolve() for root in allowed_roots]

    def GetModelStatus(self, request, context):
        try:
            name, version, label = _spec(request.model_spec)
            response = get_model_status_pb2.GetModelStatusResponse()
            for number, state, error in self.manager.status(name, version, label):
                status = response.model_version_status.add()
                status.version = number
                status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
                status.status.SetInParent()
                if error:
                    status.status.error_code, status.status.error_message = 2, error
            return response
        except ServingError as error:
            context.abort(error.grpc_code, error.message)

    def HandleReloadConfigRequest(self, request, context):
        response = model_management_pb2.ReloadConfigResponse()
        if not self.allow_reload:
            response.status.error_code = 7  # PERMISSION_DENIED
            response.status.error_message = ("config reload over gRPC is off on this server; start it with "
                                             "--allow_grpc_config_reload to allow it")
            return response
        try:
            config = check_model_config(request.config, "ReloadConfigRequest")
            for model in config.model_config_list.config:
                path = Path(model.base_path).resolve()
                if not any(path == root or root in path.parents for root in self.allowed_roots):
                    response.status.error_code = 7  # PERMISSION_DENIED
                    response.status.error_message = (f"base_path {model.base_path} of model {model.name} is outside the "
                                                     "allowed model roots (--allowed_model_root)")
                    return response
            self.manager.reload_config(config)
        except TfmmError as error:
            response.status.error_code = 3  # INVALID_ARGUMENT
            response.status.error_message = str(error)
        return response


def create_grpc_server(predictor, host, port, max_request_bytes, threads=16, allow_reload=False, allowed_roots=(),
                       ssl=None):
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", max_request_bytes), ("grpc.max_send_message_length", max_request_bytes)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(predictor), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(predictor.manager, allow_reload, allowed_roots),
                                                              server)
    if ssl is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        credentials = grpc.ssl_server_credentials([(ssl.server_key.encode(), ssl.server_cert.encode())],
                                                  root_certificates=ssl.custom_ca.encode() or None,
                                                  require_client_auth=ssl.client_verify)
        bound = server.add_secure_port(f"{host}:{port}", credentials)
    if bound == 0:
        raise TfmmError(f"cannot listen for gRPC on {host}:{port} (port in use?)")
    return server, bound
