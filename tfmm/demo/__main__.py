"""python -m tfmm.demo [--models saved_models] [--server HOST:PORT] [--host 127.0.0.1] [--port 7860]"""

import argparse
import sys

from tfmm.errors import TfmmError
from tfmm.quiet import known_notices_filtered


def parser():
    p = argparse.ArgumentParser(prog="python -m tfmm.demo", description="a web page with a tab per exported app")
    p.add_argument("--models", help="exported models, one folder per app (default: saved_models)")
    p.add_argument("--server", help="a model server's gRPC address (tfmm.serving or TF Serving) instead of --models")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--examples", help="folder for the built-in example images (default: a temporary folder)")
    return p


def main(argv=None):
    with known_notices_filtered():
        return _run(argv)


def _run(argv):
    args = parser().parse_args(argv)
    if args.models and args.server:
        parser().error("give --models or --server, not both")
    try:
        from tfmm.demo.backends import open_models
        from tfmm.demo.examples import examples
        from tfmm.demo.page import build_page, launch

        models, found = open_models(args.models, args.server), examples(args.examples)
        available = [app for app in ("retrieval", "vqa", "caption", "classify", "generate") if models.available(app)]
        print(f"models from {models.where()}: {', '.join(available) or 'none exported yet'}")
        print(f"demo on http://{args.host}:{args.port} (Ctrl+C stops it)")
        launch(build_page(models, found), found, args.host, args.port)
    except TfmmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
