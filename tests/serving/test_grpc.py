"""gRPC with the tensorflow-serving-api stubs as the client, as TF Serving's own tests do."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.serving.conftest import PARITY


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as c:
        yield c


def predict_request(name="half_plus_two", x=(2.0,), signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(x, np.float32)))
    return request


def test_predict_and_the_response_model_spec(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(predict_request(), timeout=30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [3.0]
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_output_filter_and_version(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_request(x=(2.0, 4.0), signature="two_inputs")
    request.inputs["k"].CopyFrom(tf.make_tensor_proto(np.array([1, 2], np.int32)))
    request.output_filter.append("k_twice")
    request.model_spec.version.value = 1
    response = stub.Predict(request, timeout=30)
    assert list(response.outputs) == ["k_twice"] and tf.make_ndarray(response.outputs["k_twice"]).tolist() == [2, 4]
    request.output_filter[:] = ["nope"]
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_retrieval_embedding_over_grpc(channel, model_root):
    import base64

    from tests.serving.test_rest import png_b64

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "retrieval"
    request.model_spec.signature_name = "embed_text"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["a red circle"], dtype=tf.string))
    embedding = tf.make_ndarray(stub.Predict(request, timeout=30).outputs["embedding"])
    assert embedding.shape[0] == 1 and abs(np.linalg.norm(embedding) - 1) < 1e-4
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "retrieval"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([base64.b64decode(png_b64())], dtype=tf.string))
    assert tf.make_ndarray(stub.Predict(request, timeout=30).outputs["embedding"]).shape == (1, embedding.shape[1])


def test_errors_carry_tf_servings_codes(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    cases = [
        (predict_request(name="intentionally_missing_model"), grpc.StatusCode.NOT_FOUND, "Servable"),
        (predict_request(signature="nope"), grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
    ]
    wrong_inputs = predict_request()
    wrong_inputs.inputs["z"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
    cases.append((wrong_inputs, grpc.StatusCode.INVALID_ARGUMENT, "input size does not match signature"))
    wrong_dtype = predict_request()
    wrong_dtype.inputs["x"].CopyFrom(tf.make_tensor_proto(["a"], dtype=tf.string))
    cases.append((wrong_dtype, grpc.StatusCode.INVALID_ARGUMENT, "cannot convert"))
    for request, code, details in cases:
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(request, timeout=30)
        assert error.value.code() == code and details in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        stub.Classify(classification_pb2.ClassificationRequest(), timeout=30)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert tf.make_ndarray(stub.Predict(predict_request(), timeout=30).outputs["y"]).tolist() == [3.0]


def test_metadata_and_status(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "half_plus_two"
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert "serving_default" in signatures.signature_def
    assert "tfmm_parity" not in response.metadata  # only when asked for, as TF Serving clients expect
    request.metadata_field.append("tfmm_parity")
    parity = struct_pb2.Struct()
    stub.GetModelMetadata(request, timeout=30).metadata["tfmm_parity"].Unpack(parity)
    assert json_format.MessageToDict(parity) == PARITY
    del request.metadata_field[:]
    with pytest.raises(grpc.RpcError) as error:
        stub.GetModelMetadata(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    models = model_service_pb2_grpc.ModelServiceStub(channel)
    status = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "half_plus_two"}), timeout=30)
    assert [(s.version, s.state, s.status.error_code) for s in status.model_version_status] == [(1, 30, 0)]
    with pytest.raises(grpc.RpcError) as error:
        models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "nope"}), timeout=30)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_reload_config_is_off_by_default_and_limited_to_the_model_roots(channel, model_root, tmp_path):
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    request = model_management_pb2.ReloadConfigRequest()
    config = request.config.model_config_list.config.add()
    config.name, config.base_path, config.model_platform = "renamed", str(model_root / "half_plus_two"), "tensorflow"
    status = models.HandleReloadConfigRequest(request, timeout=60).status
    assert status.error_code == 7 and "--allow_grpc_config_reload" in status.error_message
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert tf.make_ndarray(stub.Predict(predict_request(), timeout=30).outputs["y"]).tolist() == [3.0]  # still served


def test_reload_config_applies_the_new_config_exactly(model_root, tmp_path):
    from tests.serving.conftest import save_half_plus_two, start_server

    running = start_server(model_root, allow_config_reload=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            outside = model_management_pb2.ReloadConfigRequest()
            config = outside.config.model_config_list.config.add()
            save_half_plus_two(tmp_path / "elsewhere" / "1")
            config.name, config.base_path, config.model_platform = "evil", str(tmp_path / "elsewhere"), "tensorflow"
            status = models.HandleReloadConfigRequest(outside, timeout=60).status
            assert status.error_code == 7 and "outside the allowed model roots" in status.error_message
            request = model_management_pb2.ReloadConfigRequest()
            config = request.config.model_config_list.config.add()
            config.name, config.base_path, config.model_platform = "renamed", str(model_root / "half_plus_two"), "tensorflow"
            assert models.HandleReloadConfigRequest(request, timeout=60).status.error_code == 0
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert tf.make_ndarray(stub.Predict(predict_request(name="renamed"), timeout=30).outputs["y"]).tolist() == [3.0]
            with pytest.raises(grpc.RpcError) as error:
                stub.Predict(predict_request(), timeout=30)
            assert error.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        running.stop()
