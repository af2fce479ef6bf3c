"""`--ssl_config_file`: TLS for REST and gRPC from TF Serving's SSLConfig, with a certificate the test makes."""

import datetime
import ipaddress

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.conftest import start_server
from tfmm.errors import TfmmError
from tfmm.serving.config import parse_ssl_config_file


def self_signed_certificate():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem_key.decode(), certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_rest_and_grpc_over_tls(model_root, tmp_path):
    key, certificate = self_signed_certificate()
    escaped = {name: text.replace("\n", "\\n") for name, text in (("key", key), ("cert", certificate))}
    config = tmp_path / "ssl.config"
    config.write_text(f'server_key: "{escaped["key"]}"\nserver_cert: "{escaped["cert"]}"\nclient_verify: false\n')
    ca = tmp_path / "ca.pem"
    ca.write_text(certificate)
    running = start_server(model_root, ssl=parse_ssl_config_file(config))
    try:
        url = f"127.0.0.1:{running.rest_port}/v1/models/half_plus_two:predict"
        reply = httpx.post(f"https://{url}", json={"instances": [2.0]}, verify=str(ca), timeout=30)
        assert reply.status_code == 200 and reply.json() == {"predictions": [3.0]}
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not spoken
            httpx.post(f"http://{url}", json={"instances": [2.0]}, timeout=10)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([2.0], np.float32)))
        credentials = grpc.ssl_channel_credentials(root_certificates=certificate.encode())
        with grpc.secure_channel(f"127.0.0.1:{running.grpc_port}", credentials) as channel:
            reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
            assert tf.make_ndarray(reply.outputs["y"]).tolist() == [3.0]
        with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            with pytest.raises(grpc.RpcError):
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=5)
    finally:
        running.stop()


def test_bad_ssl_configs_name_the_problem(tmp_path):
    config = tmp_path / "ssl.config"
    config.write_text('server_cert: "x"\n')
    with pytest.raises(TfmmError, match="server_key and server_cert .* are both required"):
        parse_ssl_config_file(config)
    config.write_text('server_key: "k"\nserver_cert: "c"\nclient_verify: true\n')
    with pytest.raises(TfmmError, match="client_verify needs custom_ca"):
        parse_ssl_config_file(config)
    config.write_text("server_keys: 1\n")
    with pytest.raises(TfmmError, match="Error parsing text-format tensorflow.serving.SSLConfig"):
        parse_ssl_config_file(config)
