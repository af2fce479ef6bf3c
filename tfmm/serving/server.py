"""Starts the model manager, the gRPC server and the REST server together, and stops them."""

import logging
import socket
import threading
from pathlib import Path

import uvicorn

from tfmm.errors import TfmmError
from tfmm.serving.batching import Batcher
from tfmm.serving.grpc_service import create_grpc_server
from tfmm.serving.manager import ModelManager
from tfmm.serving.predictor import Predictor
from tfmm.serving.rest import create_app

log = logging.getLogger("tfmm.serving")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_port_free(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise TfmmError(f"cannot listen on {host}:{port}: the port is in use") from None


class ModelServer:
    """A TF Serving–compatible server: `start()` returns once both APIs listen; `stop()` ends them."""

    def __init__(self, model_config, host="127.0.0.1", grpc_port=8500, rest_port=8501, poll_seconds=1.0,
                 batching=None, max_request_bytes=32 << 20, limits=None, allow_config_reload=False, allowed_model_roots=None,
                 ssl=None):
        self.manager = ModelManager(model_config)
        self._tls_folder = None
        self.batcher = Batcher(batching) if batching else None
        self.predictor = Predictor(self.manager, self.batcher, limits)
        self.host, self.rest_port, self.poll_seconds = host, rest_port, poll_seconds
        if allowed_model_roots is None:  # default: where the configured models already live
            allowed_model_roots = sorted({str(Path(m.base_path).resolve().parent) for m in model_config.model_config_list.config})
        self.grpc_server, self.grpc_port = create_grpc_server(self.predictor, host, grpc_port, max_request_bytes,
                                                              allow_reload=allow_config_reload,
                                                              allowed_roots=allowed_model_roots, ssl=ssl)
        self.rest_server = None
        if rest_port:
            _check_port_free(host, rest_port)
            config = uvicorn.Config(create_app(self.manager, self.predictor, max_request_bytes), host=host, port=rest_port,
                                    log_level="warning", access_log=False, timeout_keep_alive=30, **self._rest_tls(ssl))
            self.rest_server = uvicorn.Server(config)
        self._rest_thread = None

    def _rest_tls(self, ssl):
        """uvicorn reads PEM files: the config's texts go to a private folder that lives as long as the server."""
        if ssl is None:
            return {}
        import ssl as ssl_module
        import tempfile

        self._tls_folder = tempfile.TemporaryDirectory(prefix="tfmm-tls-")
        files = {}
        for name in ("server_key", "server_cert", "custom_ca"):
            text = getattr(ssl, name)
            if text:
                files[name] = Path(self._tls_folder.name) / f"{name}.pem"
                files[name].touch(mode=0o600)
                files[name].write_text(text)
        options = {"ssl_keyfile": str(files["server_key"]), "ssl_certfile": str(files["server_cert"])}
        if ssl.custom_ca:
            options["ssl_ca_certs"] = str(files["custom_ca"])
            options["ssl_cert_reqs"] = ssl_module.CERT_REQUIRED if ssl.client_verify else ssl_module.CERT_OPTIONAL
        return options

    def start(self):
        if self.host not in LOOPBACK:
            log.warning("listening on %s: other machines can reach this server; it has no authentication, so put it "
                        "behind a gateway that has", self.host)
        self.manager.start_polling(self.poll_seconds)
        self.grpc_server.start()
        if self.rest_server is not None:
            self._rest_thread = threading.Thread(target=self.rest_server.run, name="rest", daemon=True)
            self._rest_thread.start()
            while not self.rest_server.started and self._rest_thread.is_alive():
                threading.Event().wait(0.02)
            if not self.rest_server.started:
                raise TfmmError(f"the REST server could not start on {self.host}:{self.rest_port}")
        log.info("serving gRPC on %s:%s, REST on %s:%s", self.host, self.grpc_port, self.host, self.rest_port or "off")
        return self

    def stop(self):
        self.manager.stop()
        if self.rest_server is not None:
            self.rest_server.should_exit = True
            if self._rest_thread:
                self._rest_thread.join(timeout=10)
        self.grpc_server.stop(grace=2).wait()
        if self.batcher:
            self.batcher.close()
        self.predictor.close()
        if self._tls_folder is not None:
            self._tls_folder.cleanup()
