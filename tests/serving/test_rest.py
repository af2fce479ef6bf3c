"""REST requests in the exact JSON TF Serving documents, against half_plus_two and the retrieval export."""

import base64
import io

import httpx
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401
from PIL import Image

from tests.serving.conftest import PARITY
from tfmm.data.shapes import generate_example


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=60) as c:
        yield c


def png_b64(index=0, size=32):
    buffer = io.BytesIO()
    Image.fromarray(generate_example(0, "test", index, image_size=size)["image"]).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_status_is_exactly_tf_servings_json(client):
    response = client.get("/v1/models/half_plus_two")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.get("/v1/models/half_plus_two/versions/1").json() == response.json()


def test_metadata(client):
    body = client.get("/v1/models/half_plus_two/metadata").json()
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "two_inputs", "__saved_model_init_op"} <= set(signatures)
    assert signatures["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert body["metadata"]["tfmm_parity"] == PARITY  # a tfmm export's TFLite parity, from assets.extra


def test_predict_row_and_columnar(client):
    assert client.post("/v1/models/half_plus_two:predict", json={"instances": [2, 3, 4]}).json() == {"predictions": [3.0, 3.5, 4.0]}
    assert client.post("/v1/models/half_plus_two:predict", json={"inputs": [2, 3, 4]}).json() == {"outputs": [3.0, 3.5, 4.0]}
    assert client.post("/v1/models/half_plus_two/versions/1:predict", json={"inputs": {"x": [1.0]}}).json() == {"outputs": [2.5]}
    rows = client.post("/v1/models/half_plus_two:predict", json={"signature_name": "two_inputs",
                                                                "instances": [{"x": 2, "k": 1}, {"x": 4, "k": 5}]}).json()
    assert rows == {"predictions": [{"y": 3.0, "k_twice": 2}, {"y": 4.0, "k_twice": 10}]}
    columns = client.post("/v1/models/half_plus_two:predict", json={"signature_name": "two_inputs",
                                                                   "inputs": {"x": [2], "k": [3]}}).json()
    assert columns == {"outputs": {"y": [3.0], "k_twice": [6]}}


def test_bytes_outputs_come_back_as_b64(client):
    body = client.post("/v1/models/half_plus_two:predict", json={"signature_name": "echo", "instances": [{"b64": base64.b64encode(b"\x00hi").decode()}]}).json()
    assert body["predictions"][0] == {"text_bytes": {"b64": base64.b64encode(b"\x00hi").decode()}, "length": 3}


def test_retrieval_export_over_rest_matches_the_saved_model(client, model_root):
    image = png_b64(0)
    body = client.post("/v1/models/retrieval:predict", json={"instances": [{"b64": image}]}).json()
    model = tf.saved_model.load(str(model_root / "retrieval" / "1"))
    expected = model.signatures["embed_image"](image_bytes=tf.constant([base64.b64decode(image)]))["embedding"].numpy()
    np.testing.assert_allclose(body["predictions"], expected, atol=1e-6)
    text = client.post("/v1/models/retrieval:predict", json={"signature_name": "embed_text", "instances": ["a red circle"]}).json()
    assert len(text["predictions"][0]) == expected.shape[1]
    zero_shot = client.post("/v1/models/retrieval:predict", json={
        "signature_name": "zero_shot", "inputs": {"image_bytes": [{"b64": image}], "class_names": ["red circle", "blue star"]}}).json()
    assert zero_shot["outputs"]["label"][0] in ("red circle", "blue star")
    assert sum(zero_shot["outputs"]["probabilities"][0]) == pytest.approx(1.0, abs=1e-5)


BAD_REQUESTS = [
    ("malformed JSON", "/v1/models/half_plus_two:predict", b"{not json", 400, "JSON Parse error"),
    ("empty body", "/v1/models/half_plus_two:predict", b"", 400, "The document is empty"),
    ("not an object", "/v1/models/half_plus_two:predict", b"[1, 2]", 400, "JSON object"),
    ("unknown model", "/v1/models/nope:predict", {"instances": [1]}, 404, "Servable not found for request: Latest(nope)"),
    ("unknown version", "/v1/models/half_plus_two/versions/7:predict", {"instances": [1]}, 404, "Specific(half_plus_two, 7)"),
    ("unknown label", "/v1/models/half_plus_two/labels/canary:predict", {"instances": [1]}, 400, "Unrecognized servable version label: canary"),
    ("unknown signature", "/v1/models/half_plus_two:predict", {"signature_name": "nope", "instances": [1]}, 400, 'signature name: "nope" not found'),
    ("signature name not a string", "/v1/models/half_plus_two:predict", {"signature_name": 3, "instances": [1]}, 400, "must be a string"),
    ("both formats", "/v1/models/half_plus_two:predict", {"instances": [1], "inputs": [1]}, 400, "only one of 'inputs' or 'instances'"),
    ("neither format", "/v1/models/half_plus_two:predict", {"x": [1]}, 400, "Missing 'inputs' or 'instances' key"),
    ("wrong input names", "/v1/models/half_plus_two:predict", {"signature_name": "two_inputs", "instances": [{"x": 1, "z": 2}]}, 400, "expecting an object with the keys"),
    ("missing named input", "/v1/models/half_plus_two:predict", {"signature_name": "two_inputs", "inputs": {"x": [1]}}, 400, "Missing named input: k"),
    ("wrong dtype", "/v1/models/half_plus_two:predict", {"instances": ["two"]}, 400, "is not of expected type: float"),
    ("float for an int input", "/v1/models/half_plus_two:predict", {"signature_name": "two_inputs", "inputs": {"x": [1], "k": [1.5]}}, 400, "is not of expected type: int32"),
    ("wrong shape", "/v1/models/half_plus_two:predict", {"instances": [[1, 2]]}, 400, "does not match the signature"),
    ("ragged list", "/v1/models/half_plus_two:predict", {"inputs": [[1, 2], [3]]}, 400, "Encountered list at unexpected size"),
    ("invalid base64", "/v1/models/retrieval:predict", {"instances": [{"b64": "***"}]}, 400, "Unable to base64 decode"),
    ("b64 object with extra keys", "/v1/models/retrieval:predict", {"instances": [{"b64": "aGk=", "x": 1}]}, 400, "exactly one key"),
    ("bytes that are not an image", "/v1/models/retrieval:predict", {"instances": [{"b64": base64.b64encode(b"hello").decode()}]}, 400, "Unknown image file format"),
    ("empty batch", "/v1/models/half_plus_two:predict", {"instances": []}, 400, "non-empty list"),
    ("empty columnar batch", "/v1/models/half_plus_two:predict", {"inputs": []}, 400, "empty batch"),
    ("empty class list", "/v1/models/retrieval:predict", {"signature_name": "zero_shot", "inputs": {"image_bytes": [{"b64": png_b64()}], "class_names": []}}, 400, "empty"),
    ("path traversal in the name", "/v1/models/..%2F..%2Fetc:predict", {"instances": [1]}, 404, "Servable not found"),
    ("classify", "/v1/models/half_plus_two:classify", {"examples": [{"x": 1}]}, 501, "classify needs"),
    ("GET on predict", "/v1/models/half_plus_two:predict", None, 400, "Malformed request: GET"),
    ("version too large", "/v1/models/half_plus_two/versions/99999999999999999999:predict", {"instances": [1]}, 400, "Failed to convert version"),
    ("no model name", "/v1/models", None, 400, "Missing model name in request."),
]


@pytest.mark.parametrize("what,path,body,status,message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_tf_serving_errors_and_the_server_keeps_serving(client, what, path, body, status, message):
    if body is None:
        response = client.get(path)
    elif isinstance(body, bytes):
        response = client.post(path, content=body)
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    assert client.post("/v1/models/half_plus_two:predict", json={"instances": [2]}).json() == {"predictions": [3.0]}


def test_oversized_body_is_refused(client):
    response = client.post("/v1/models/half_plus_two:predict", content=b"[" + b"1," * (1 << 20) + b"1]")
    assert response.status_code == 429 and "exceeds the limit" in response.json()["error"]
    assert client.post("/v1/models/half_plus_two:predict", json={"instances": [2]}).status_code == 200


def test_other_paths_health_and_metrics(client):
    assert client.get("/foo").status_code == 404 and client.get("/foo").content == b""
    assert client.get("/healthz").json() == {"status": "ok"}
    client.post("/v1/models/half_plus_two:predict", json={"instances": [2]})
    text = client.get("/monitoring/prometheus/metrics").text
    assert "# TYPE" in text
    assert ':tensorflow:serving:request_count_total{api="predict",entrypoint="REST",model_name="half_plus_two",status="OK"}' in text
    assert ":tensorflow:serving:request_latency_bucket" in text
