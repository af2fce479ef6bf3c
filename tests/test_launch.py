"""`python -m tfmm.launch`: TF_CONFIG per worker, prefixed logs, whole-launch failure, no stray processes."""

import json
import socket
import subprocess
import sys
import time

import psutil

PRINT_CONFIG = "import json, os, sys; c = json.loads(os.environ['TF_CONFIG']); print('training ' + json.dumps(c)); sys.stdout.flush()"


def launch(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tfmm.launch", *args], capture_output=True, text=True, timeout=timeout)


def test_each_worker_gets_its_tf_config_and_a_prefix():
    result = launch("--workers", "3", "--", sys.executable, "-c", PRINT_CONFIG)
    assert result.returncode == 0, result.stderr
    configs = {}
    for line in result.stdout.splitlines():
        prefix, _, payload = line.partition("] training ")
        configs[int(prefix.removeprefix("[worker "))] = json.loads(payload)
    assert sorted(configs) == [0, 1, 2]
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    for index, config in configs.items():
        assert config["task"] == {"type": "worker", "index": index} and config["cluster"]["worker"] == workers


def test_one_failing_worker_stops_the_others_and_fails_the_launch():
    script = ("import json, os, sys, time; i = json.loads(os.environ['TF_CONFIG'])['task']['index']; "
              "print('training', i, flush=True); time.sleep(0.5); sys.exit(7) if i == 1 else time.sleep(120)")
    started = time.time()
    result = launch("--workers", "2", "--", sys.executable, "-c", script)
    assert result.returncode == 7
    assert "worker 1 failed with exit code 7" in result.stderr
    assert time.time() - started < 60  # worker 0 was stopped, not waited for
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and script in p.info["cmdline"]]


def test_a_worker_that_never_joins_times_out_and_nothing_is_left_running():
    script = "import time; time.sleep(120)"
    result = launch("--workers", "2", "--start-timeout", "2", "--", sys.executable, "-c", script)
    assert result.returncode == 3 and "did not join the cluster within 2 s" in result.stderr
    time.sleep(0.5)
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and script in p.info["cmdline"]]


def test_bad_arguments(capsys):
    # in-process: each refusal happens before any worker starts (a process per case would spend 6 s importing TF)
    from tfmm.launch import main

    def refused(*args):
        code = main(list(args))
        return code, capsys.readouterr().err

    assert refused("--workers", "0", "--", "true") == (2, "error: --workers must be at least 1, got 0\n")
    code, err = refused("--workers", "1", "--")
    assert code == 2 and "no command after --" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        code, err = refused("--workers", "1", "--ports", str(port), "--", "true")
    assert code == 2 and f"port {port} on 127.0.0.1 is in use" in err
    assert "names 1 ports for 2 workers" in refused("--workers", "2", "--ports", "1234", "--", "true")[1]
