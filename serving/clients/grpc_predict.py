"""gRPC client for the retrieval export, on the tensorflow-serving-api stubs (works against both servers).

    python serving/clients/grpc_predict.py image.png [--server localhost:8500]
"""

import argparse

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("--server", default="localhost:8500")
    parser.add_argument("--classes", default="red circle,blue star,green square")
    args = parser.parse_args()
    with grpc.insecure_channel(args.server) as channel:
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "retrieval"}), timeout=10)
        print("status:", [(s.version, s.state) for s in status.model_version_status])
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "retrieval"
        request.model_spec.signature_name = "zero_shot"
        with open(args.image, "rb") as handle:
            request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([handle.read()], dtype=tf.string))
        request.inputs["class_names"].CopyFrom(tf.make_tensor_proto(args.classes.split(","), dtype=tf.string))
        response = stub.Predict(request, timeout=30)
        print("label:", tf.make_ndarray(response.outputs["label"])[0].decode())
        print("probabilities:", tf.make_ndarray(response.outputs["probabilities"])[0])
        print("served by version", response.model_spec.version.value)


if __name__ == "__main__":
    main()
