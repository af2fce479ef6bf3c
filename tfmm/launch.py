"""`python -m tfmm.launch --workers N -- COMMAND...`: N local workers of a multi-worker run.

Each worker gets a `TF_CONFIG` naming all workers on loopback ports and its own index,
so `tf.distribute.MultiWorkerMirroredStrategy` (chosen automatically when TF_CONFIG is
set) forms one cluster. Output is streamed with a `[worker i]` prefix. If any worker
fails, the others are stopped and the launch fails with its exit code; if a worker
has not joined training within `--start-timeout` seconds (it prints the line that
starts with `training `), everything is stopped too. No worker outlives the launcher.

On a real cluster, run the same app command on every host with the TF_CONFIG the
cluster manager sets (see the README).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

READY_MARKER = "training "


def free_ports(count, host="127.0.0.1"):
    sockets, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


def check_ports(ports, host="127.0.0.1"):
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                raise SystemExit(f"error: port {port} on {host} is in use")


def tf_config(addresses, index):
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


class Launcher:
    def __init__(self, command, workers, ports, start_timeout, output=sys.stdout):
        self.command, self.workers, self.ports, self.start_timeout = command, workers, ports, start_timeout
        self.output, self.lock = output, threading.Lock()
        self.processes, self.ready = [], set()

    def _stream(self, index, pipe):
        for line in iter(pipe.readline, ""):
            if line.startswith(READY_MARKER):
                self.ready.add(index)
            with self.lock:
                self.output.write(f"[worker {index}] {line}")
                self.output.flush()
        pipe.close()

    def stop_all(self, grace=10):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.time() + grace
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def run(self):
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        threads = []
        for index in range(self.workers):
            env = {**os.environ, "TF_CONFIG": tf_config(addresses, index), "PYTHONUNBUFFERED": "1"}
            process = subprocess.Popen(self.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.processes.append(process)
            thread = threading.Thread(target=self._stream, args=(index, process.stdout), daemon=True)
            thread.start()
            threads.append(thread)
        started = time.time()
        try:
            while True:
                codes = [p.poll() for p in self.processes]
                failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
                if failed:
                    index, code = failed[0]
                    self.stop_all()
                    self._say(f"worker {index} failed with exit code {code}; stopped the others")
                    return code
                if all(c == 0 for c in codes):
                    return 0
                if self.start_timeout and len(self.ready) < self.workers and time.time() - started > self.start_timeout:
                    missing = sorted(set(range(self.workers)) - self.ready)
                    self.stop_all()
                    self._say(f"worker(s) {missing} did not join the cluster within {self.start_timeout:.0f} s; stopped all workers")
                    return 3
                time.sleep(0.2)
        except KeyboardInterrupt:
            self.stop_all()
            return 130
        finally:
            for thread in threads:
                thread.join(timeout=5)

    def _say(self, message):
        with self.lock:
            print(f"error: {message}", file=sys.stderr, flush=True)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: python -m tfmm.launch --workers N [--ports P1,P2,...] [--start-timeout S] -- COMMAND ...", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m tfmm.launch")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--ports", help="comma-separated ports, one per worker (default: free ports)")
    parser.add_argument("--start-timeout", type=float, default=300, help="seconds for every worker to join; 0 = no limit")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    if not command:
        print("error: no command after --", file=sys.stderr)
        return 2
    if args.ports:
        try:
            ports = [int(p) for p in args.ports.split(",")]
        except ValueError:
            print(f"error: --ports must be integers, got {args.ports!r}", file=sys.stderr)
            return 2
        if len(ports) != args.workers:
            print(f"error: --ports names {len(ports)} ports for {args.workers} workers", file=sys.stderr)
            return 2
        try:
            check_ports(ports)
        except SystemExit as error:
            print(error, file=sys.stderr)
            return 2
    else:
        ports = free_ports(args.workers)
    launcher = Launcher(command, args.workers, ports, args.start_timeout)
    signal.signal(signal.SIGTERM, lambda *_: (launcher.stop_all(), sys.exit(143)))
    return launcher.run()


if __name__ == "__main__":
    raise SystemExit(main())
