"""Prometheus metrics at TF Serving's path, `/monitoring/prometheus/metrics`, with its metric names."""

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry()
REQUESTS = prometheus_client.Counter(
    ":tensorflow:serving:request_count", "Requests, by model, API and status.",
    ["model_name", "api", "entrypoint", "status"], registry=REGISTRY,
)
LATENCY = prometheus_client.Histogram(
    ":tensorflow:serving:request_latency", "Request latency in microseconds, by model and API.",
    ["model_name", "api", "entrypoint"], registry=REGISTRY,
    buckets=(100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000, float("inf")),
)
BATCH_SIZE = prometheus_client.Histogram(
    ":tensorflow:serving:batching_session:input_batch_size", "Rows per executed request or batch.",
    ["model_name"], registry=REGISTRY, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, float("inf")),
)


UNKNOWN_MODEL = "(unknown)"  # every name the server does not serve shares one label


def record(model_name, api, entrypoint, status, seconds):
    REQUESTS.labels(model_name or "", api, entrypoint, status).inc()
    LATENCY.labels(model_name or "", api, entrypoint).observe(seconds * 1e6)


def model_label(manager, name):
    return name if name and manager.knows(name) else UNKNOWN_MODEL


def render():
    return prometheus_client.generate_latest(REGISTRY), prometheus_client.CONTENT_TYPE_LATEST
