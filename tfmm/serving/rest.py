"""TF Serving's REST API on Starlette (served by uvicorn), routed with TF Serving's own regexes."""

import json
import logging
import re
import time
from urllib.parse import unquote

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from tfmm.serving import metrics
from tfmm.serving.json_tensor import make_predict_response, parse_predict_body
from tfmm.serving.status import ServingError, internal, invalid

log = logging.getLogger("tfmm.serving")

POST_PATH = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.I)
GET_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.I)


def json_response(body, status=200):
    return Response(json.dumps(body, allow_nan=True), status_code=status, media_type="application/json")


def error_response(error):
    return json_response({"error": error.message}, error.http_status)


def _version(text):
    if text is None:
        return None
    value = int(text)
    if value >= 2**63:
        raise invalid(f"Failed to convert version: {text}")
    return value


def status_json(manager, name, version, label):
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state, error in manager.status(name, version, label):
        status = response.model_version_status.add()
        status.version = number
        status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
        status.status.SetInParent()
        if error:
            status.status.error_code = 2  # UNKNOWN
            status.status.error_message = error
    return json_format.MessageToDict(response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def signature_def_map(servable):
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, value in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(value)
    return signature_map


def metadata_json(manager, name, version, label):
    servable = manager.resolve(name, version, label)
    signature_map = json_format.MessageToDict(
        signature_def_map(servable), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    metadata = {"signature_def": signature_map}
    if servable.parity is not None:  # beyond TF Serving: how far each shipped TFLite file agrees with the model
        metadata["tfmm_parity"] = servable.parity
    return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)}, "metadata": metadata}


def create_app(manager, predictor, max_request_bytes):
    async def read_body(request):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_request_bytes:
            raise ServingError("RESOURCE_EXHAUSTED", f"request body of {declared} bytes exceeds the limit of {max_request_bytes}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_request_bytes:
                raise ServingError("RESOURCE_EXHAUSTED", f"request body exceeds the limit of {max_request_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def v1(request: Request):
        raw = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?")[0]
        if not re.match(r"(?i)/v1/", raw):
            return Response(b"", status_code=404)  # TF Serving: only /v1/... reaches the handler
        started, model, api = time.perf_counter(), "", "other"
        try:
            if request.method == "POST" and (match := POST_PATH.fullmatch(raw)):
                model, version, label, verb = unquote(match.group(1)), _version(match.group(2)), match.group(3), match.group(4).lower()
                api = verb
                label = unquote(label) if label else None
                body = await read_body(request)
                if verb != "predict":
                    raise ServingError("UNIMPLEMENTED", f"{verb} needs a {verb} SignatureDef (serialized tf.Example input); "
                                                        "Keras exports offer predict signatures only")
                response = await run_in_threadpool(_predict, predictor, model, version, label, body)
            elif request.method == "GET" and (match := GET_PATH.fullmatch(raw)):
                if match.group(1) is None:
                    raise invalid("Missing model name in request.")
                model, version = unquote(match.group(1)), _version(match.group(2))
                label = unquote(match.group(3)) if match.group(3) else None
                if match.group(4):
                    api = "metadata"
                    response = metadata_json(manager, model, version, label)
                else:
                    api = "status"
                    response = status_json(manager, model, version, label)
            else:
                raise invalid(f"Malformed request: {request.method} {raw}")
            metrics.record(metrics.model_label(manager, model), api, "REST", "OK", time.perf_counter() - started)
            return json_response(response)
        except Exception as error:  # noqa: BLE001  (the request fails; the server stays up)
            if not isinstance(error, ServingError):
                log.exception("REST %s %s failed", request.method, raw)
                error = internal(error)
            metrics.record(metrics.model_label(manager, model), api, "REST", error.code, time.perf_counter() - started)
            return error_response(error)

    async def prometheus(request: Request):
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def health(request: Request):
        ready = manager.any_available()
        return json_response({"status": "ok" if ready else "no model available"}, 200 if ready else 503)

    async def not_found(request: Request, exc=None):
        return Response(b"", status_code=404)

    routes = [
        Route("/monitoring/prometheus/metrics", prometheus, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/{path:path}", v1, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]

    return Starlette(routes=routes, exception_handlers={404: not_found})


def _predict(predictor, model, version, label, body):
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise invalid(f"JSON Parse error: {error}") from None
    if not isinstance(request, dict):
        raise invalid("JSON Value: the request body must be a JSON object")
    signature_name = request.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid("'signature_name' key must be a string value.")
    signature_name = signature_name or "serving_default"
    servable = predictor.manager.resolve(model, version, label)
    if signature_name not in servable.signature_defs or signature_name == "__saved_model_init_op":
        raise invalid(f'Serving signature name: "{signature_name}" not found in signature def')
    inputs, row_format = parse_predict_body(request, servable.signature_defs[signature_name])
    _, outputs = predictor.predict(servable, signature_name, inputs)
    return make_predict_response(outputs, row_format)
