"""`python -m tfmm.serving`: a TF Serving–compatible model server, with tensorflow_model_server's flags.

    python -m tfmm.serving --model_name=retrieval --model_base_path=$PWD/saved_models/retrieval --rest_api_port=8501
    python -m tfmm.serving --model_config_file=serving/models.config --port=8500 --rest_api_port=8501 \
        --enable_batching --batching_parameters_file=serving/batching_parameters.txt
"""

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from tfmm.errors import TfmmError
from tfmm.quiet import known_notices_filtered
from tfmm.serving.limits import Limits


def _bool(text):
    return str(text).lower() in ("1", "true", "yes", "")


def parser():
    p = argparse.ArgumentParser(prog="python -m tfmm.serving", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8500, help="gRPC port (TF Serving's default 8500)")
    p.add_argument("--rest_api_port", type=int, default=0, help="REST port; 0 turns REST off (as in TF Serving)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (tfmm default: loopback only)")
    p.add_argument("--model_name", help="name of the single model to serve")
    p.add_argument("--model_base_path", help="directory holding the single model's version directories")
    p.add_argument("--model_config_file", help="text-format ModelServerConfig (several models, version policies, labels)")
    p.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0,
                   help="re-read --model_config_file this often; 0 reads it once")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0, help="how often to look for new versions")
    p.add_argument("--enable_batching", nargs="?", const="true", default="false", type=str)
    p.add_argument("--batching_parameters_file", help="text-format BatchingParameters")
    p.add_argument("--max_request_bytes", type=int, default=32 << 20, help="largest accepted request body (tfmm)")
    limits = Limits()
    p.add_argument("--max_rows_per_request", type=int, default=limits.max_rows, help="rows any input may have (tfmm)")
    p.add_argument("--max_image_pixels", type=int, default=limits.max_image_pixels,
                   help="width × height an encoded image may declare, read before decoding (tfmm)")
    p.add_argument("--request_timeout_seconds", type=float, default=limits.timeout_seconds,
                   help="a request not answered by then fails with DEADLINE_EXCEEDED (tfmm)")
    p.add_argument("--max_concurrent_requests", type=int, default=limits.max_concurrent,
                   help="requests running at once; more are refused with RESOURCE_EXHAUSTED (tfmm)")
    p.add_argument("--ssl_config_file", help="text-format SSLConfig (server_key, server_cert PEM texts; custom_ca, "
                                             "client_verify): TLS for gRPC and REST, as TF Serving's flag")
    p.add_argument("--allow_grpc_config_reload", action="store_true",
                   help="accept ModelService/HandleReloadConfigRequest (off: any client could unload every model)")
    p.add_argument("--allowed_model_root", action="append",
                   help="a directory reloaded configs may load models from (repeatable; default: the parents of the "
                        "configured base paths)")
    return p


def build_server(args):
    from tfmm.serving.config import (
        BatchingParameters,
        parse_batching_parameters,
        parse_model_config_file,
        parse_ssl_config_file,
        single_model_config,
    )
    from tfmm.serving.server import ModelServer

    if args.model_config_file:
        if args.model_name or args.model_base_path:
            raise TfmmError("use either --model_config_file or --model_name/--model_base_path, not both")
        config = parse_model_config_file(args.model_config_file)
    elif args.model_base_path:
        if not Path(args.model_base_path).is_dir():
            raise TfmmError(f"--model_base_path {args.model_base_path} is not a directory")
        config = single_model_config(args.model_name or "default", Path(args.model_base_path).resolve())
    else:
        raise TfmmError("give --model_config_file, or --model_name and --model_base_path")
    batching = None
    if _bool(args.enable_batching):
        batching = parse_batching_parameters(args.batching_parameters_file) if args.batching_parameters_file else BatchingParameters()
    try:
        limits = Limits(args.max_rows_per_request, args.max_image_pixels, args.request_timeout_seconds,
                        args.max_concurrent_requests)
    except ValueError as error:
        raise TfmmError(str(error)) from None
    ssl = parse_ssl_config_file(args.ssl_config_file) if args.ssl_config_file else None
    return ModelServer(config, args.host, args.port, args.rest_api_port, args.file_system_poll_wait_seconds,
                       batching, args.max_request_bytes, limits, args.allow_grpc_config_reload, args.allowed_model_root,
                       ssl)


def main(argv=None):
    with known_notices_filtered():  # TensorFlow's C++ notices come at any point of serving, not only at start
        return _serve(argv)


def _serve(argv):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        server = build_server(args).start()
    except TfmmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
        from tfmm.serving.config import parse_model_config_file

        while not done.wait(args.model_config_file_poll_wait_seconds):
            try:
                server.manager.reload_config(parse_model_config_file(args.model_config_file))
            except TfmmError as error:
                logging.getLogger("tfmm.serving").error("%s (keeping the previous config)", error)
    else:
        done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
