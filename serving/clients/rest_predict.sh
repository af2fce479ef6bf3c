#!/usr/bin/env bash
# REST client for the retrieval export; works against tensorflow_model_server and python -m tfmm.serving.
#   serving/clients/rest_predict.sh image.png [host:port]
set -euo pipefail
image=${1:?usage: rest_predict.sh IMAGE [HOST:PORT]}
server=${2:-localhost:8501}
b64=$(base64 -w0 "$image")
curl -s "http://$server/v1/models/retrieval"
echo
# Row format, serving_default (embed_image): image bytes as {"b64": ...}
curl -s -X POST "http://$server/v1/models/retrieval:predict" \
  -H 'Content-Type: application/json' -d "{\"instances\": [{\"b64\": \"$b64\"}]}" | head -c 300
echo
# Columnar format for zero_shot (its two inputs have different first dimensions)
curl -s -X POST "http://$server/v1/models/retrieval:predict" -H 'Content-Type: application/json' \
  -d "{\"signature_name\": \"zero_shot\", \"inputs\": {\"image_bytes\": [{\"b64\": \"$b64\"}], \"class_names\": [\"red circle\", \"blue star\"]}}"
echo
