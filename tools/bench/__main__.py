"""python -m tools.bench SUITE [--smoke] [--output DIR] [suite options] | render | all --smoke

Suites: retrieval, peer, fusion, serving, scaling, vqa, classify, caption, generate, gan, segment, assistant. Each writes
`benchmarks/SUITE.json` (or into `--output`) and re-renders BENCHMARKS.md; `--smoke` runs tiny settings
into a scratch folder and renders nothing.
"""

import argparse
import importlib
import os
import shlex
import sys

import tfmm  # noqa: F401  (first: TensorFlow is imported without its start-up lines)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SUITES = ("retrieval", "peer", "fusion", "serving", "scaling", "vqa", "classify", "caption", "generate", "gan", "segment", "assistant")


def suite_module(name):
    return importlib.import_module(f"tools.bench.suites.{name}")


def parser():
    main = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    sub = main.add_subparsers(dest="suite", required=True)
    sub.add_parser("render", help="render BENCHMARKS.md from benchmarks/*.json")
    every = sub.add_parser("all", help="every suite, one after the other")
    every.add_argument("--smoke", action="store_true")
    every.add_argument("--output", help="folder for the JSON files")
    for name in SUITES:
        module = suite_module(name)
        p = sub.add_parser(name, help=module.__doc__.splitlines()[0])
        p.add_argument("--smoke", action="store_true", help="tiny settings: checks the suite runs, measures nothing")
        p.add_argument("--output", help="folder for the JSON file (default: benchmarks/, or a scratch folder with --smoke)")
        module.add_arguments(p)
    return main


def run_suite(name, args, argv):
    import tempfile

    from tools.bench.harness import RESULTS, Report
    from tools.bench.render import render

    module = suite_module(name)
    settings = {k: v for k, v in vars(args).items() if k not in ("suite", "output")}
    report = Report(name, "python -m tools.bench " + shlex.join([name, *argv]), settings, smoke=args.smoke)
    module.run(args, report)
    output = args.output or (tempfile.mkdtemp(prefix="tfmm-bench-smoke-") if args.smoke else RESULTS)
    path = report.write(output)
    if not args.smoke and not args.output:
        render()
    return path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.suite == "render":
        from tools.bench.render import render

        render()
        return 0
    if args.suite == "all":
        for name in SUITES:
            defaults = parser().parse_args([name, *(["--smoke"] if args.smoke else [])])
            defaults.output = args.output
            run_suite(name, defaults, [name] + (["--smoke"] if args.smoke else []))
        return 0
    run_suite(args.suite, args, argv[1:])
    return 0


if __name__ == "__main__":
    from tfmm.quiet import known_notices_filtered

    with known_notices_filtered():  # as the apps: known framework notices (oneDNN's E-level lines) go, the rest shows
        code = main()
    raise SystemExit(code)
