import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.serving.conftest import free_port, save_half_plus_two, start_server
from tfmm.errors import TfmmError
from tfmm.serving.config import BatchingParameters, parse_batching_parameters, parse_model_config_file


def wait_for(predicate, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_new_versions_are_picked_up_and_half_written_ones_never_load(tmp_path):
    root = tmp_path / "models"
    save_half_plus_two(root / "half_plus_two" / "1")
    (root / "retrieval").mkdir()
    running = start_server(root, poll=0.2)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{running.rest_port}", timeout=30)
        status = lambda: client.get("/v1/models/half_plus_two").json()["model_version_status"]  # noqa: E731
        # A version being written: numbered, but saved_model.pb not there yet; and a staging name.
        (root / "half_plus_two" / "2" / "variables").mkdir(parents=True)
        save_half_plus_two(root / "half_plus_two" / ".tmp-3")
        time.sleep(1.0)
        assert [s["version"] for s in status() if s["state"] == "AVAILABLE"] == ["1"]
        # A corrupt saved_model.pb: the load fails, version 1 keeps serving.
        (root / "half_plus_two" / "2" / "saved_model.pb").write_bytes(b"garbage")
        (root / "half_plus_two" / "2" / "variables" / "variables.index").write_bytes(b"")
        assert wait_for(lambda: any(s["version"] == "2" and s["status"]["error_message"] for s in status()))
        assert client.post("/v1/models/half_plus_two:predict", json={"instances": [2]}).json() == {"predictions": [3.0]}
        # The atomic way: write under a non-integer name, then rename.
        os.rename(root / "half_plus_two" / ".tmp-3", root / "half_plus_two" / "3")
        assert wait_for(lambda: client.get("/v1/models/half_plus_two/versions/3").status_code == 200
                        and client.get("/v1/models/half_plus_two/versions/3").json()["model_version_status"][0]["state"] == "AVAILABLE")
        response = client.post("/v1/models/half_plus_two:predict", json={"instances": [2]})
        assert response.json() == {"predictions": [3.0]}
        assert wait_for(lambda: any(s["version"] == "1" and s["state"] == "END" for s in status()))  # latest policy unloads 1
        assert client.post("/v1/models/half_plus_two/versions/1:predict", json={"instances": [2]}).status_code == 404
    finally:
        running.stop()


def test_dynamic_batching_merges_concurrent_requests(model_root, tmp_path):
    from tfmm.serving import metrics

    def executions():
        """(batches of one row, batches) run so far for this model: the registry is process-wide, so
        the test reads what its own requests add to it."""
        text = metrics.render()[0].decode().splitlines()
        prefix = ":tensorflow:serving:batching_session:input_batch_size"
        one = [l for l in text if l.startswith(f'{prefix}_bucket{{le="1.0",model_name="half_plus_two"}}')]
        count = [l for l in text if l.startswith(f'{prefix}_count{{model_name="half_plus_two"}}')]
        return (float(one[0].split()[-1]) if one else 0.0), (float(count[0].split()[-1]) if count else 0.0)

    running = start_server(model_root, batching=BatchingParameters(max_batch_size=16, batch_timeout_micros=50000, num_batch_threads=2))
    try:
        url = f"http://127.0.0.1:{running.rest_port}/v1/models/half_plus_two:predict"
        results = {}
        ones_before, batches_before = executions()

        def call(i):
            results[i] = httpx.post(url, json={"instances": [float(i)]}, timeout=30).json()

        threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {i: {"predictions": [0.5 * i + 2.0]} for i in range(12)}
        ones, batches = executions()
        # 12 one-row requests ran in fewer than 12 executions, and not all of them alone: some were merged.
        assert 1 <= batches - batches_before < 12, (batches_before, batches)
        assert ones - ones_before < batches - batches_before, "no request was merged into a batch"
    finally:
        running.stop()


def test_config_files(tmp_path):
    good = tmp_path / "models.config"
    good.write_text('model_config_list: { config: { name: "a", base_path: "/m/a", model_platform: "tensorflow",'
                    ' model_version_policy: { specific: { versions: 1 versions: 2 } }, version_labels { key: "stable" value: 1 } } }')
    config = parse_model_config_file(good)
    assert list(config.model_config_list.config[0].model_version_policy.specific.versions) == [1, 2]
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(TfmmError, match="Error parsing text-format tensorflow.serving.ModelServerConfig"):
        parse_model_config_file(bad)
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 128 }\nbatch_timeout_micros { value: 0 }\n"
                        "max_enqueued_batches { value: 1000000 }\nnum_batch_threads { value: 8 }\nallowed_batch_sizes: 8\n")
    params = parse_batching_parameters(batching)
    assert (params.max_batch_size, params.batch_timeout_micros, params.num_batch_threads, params.allowed_batch_sizes) == (128, 0, 8, (8,))
    batching.write_text("max_batch_sizes { value: 1 }")
    with pytest.raises(TfmmError, match="unknown batching parameter 'max_batch_sizes'"):
        parse_batching_parameters(batching)


def test_the_shipped_serving_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "serving"
    names = [c.name for c in parse_model_config_file(root / "models.config").model_config_list.config]
    assert names == ["retrieval", "vqa", "caption", "classify", "generate"]  # every app's export
    assert parse_batching_parameters(root / "batching_parameters.txt").max_batch_size >= 8


def test_command_line_errors(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tfmm.serving", "--rest_api_port", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "give --model_config_file" in result.stderr
    save_half_plus_two(tmp_path / "m" / "1")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "tfmm.serving", "--model_name", "m", "--model_base_path", str(tmp_path / "m"),
                                 "--port", str(free_port()), "--rest_api_port", str(port)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "port is in use" in result.stderr


def test_version_policies_and_labels(tmp_path):
    from tensorflow_serving.config import model_server_config_pb2

    from tfmm.serving.manager import ModelManager
    from tfmm.serving.status import ServingError

    for version in (1, 2, 3):
        save_half_plus_two(tmp_path / "m" / str(version))

    def manager(policy_text):
        config = model_server_config_pb2.ModelServerConfig()
        model = config.model_config_list.config.add()
        model.name, model.base_path = "m", str(tmp_path / "m")
        from google.protobuf import text_format
        text_format.Parse(policy_text, model.model_version_policy)
        model.version_labels["stable"] = 1
        return ModelManager(config)

    def available(m):
        return sorted(v for v, state, _ in m.status("m") if state == "AVAILABLE")

    assert available(manager("")) == [3]
    assert available(manager("latest { num_versions: 2 }")) == [2, 3]
    assert available(manager("all {}")) == [1, 2, 3]
    pinned = manager("specific { versions: 1 versions: 3 }")
    assert available(pinned) == [1, 3]
    assert pinned.resolve("m").version == 3
    assert pinned.resolve("m", label="stable").version == 1
    with pytest.raises(ServingError, match="Specific\\(m, 2\\)"):
        pinned.resolve("m", version=2)


def test_the_compose_file_pins_tf_serving_to_the_tensorflow_we_pin():
    import re
    from pathlib import Path

    import tensorflow as tf

    compose = (Path(__file__).resolve().parents[2] / "serving" / "docker-compose.yml").read_text()
    image = re.search(r"image: tensorflow/serving:(\S+)", compose).group(1)
    assert image.rsplit(".", 1)[0] == ".".join(tf.__version__.split(".")[:2])  # 2.21.x serves what TF 2.21 writes
