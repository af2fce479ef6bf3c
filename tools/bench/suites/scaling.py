"""scaling: the same retrieval training in one process, in two local workers (MultiWorkerMirroredStrategy
through `tfmm.launch`) and under MirroredStrategy over two logical CPUs."""

import re
import subprocess
import sys
import time

from tools.bench.harness import scratch

MIRRORED_LOGICAL_CPUS = r"""
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfmm.apps import retrieval
raise SystemExit(retrieval.main(sys.argv[1:]))
"""


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=8, help="epochs per setup")


def run(args, report):
    app = ["-m", "tfmm.apps.retrieval"]
    setups = [("1 process, default strategy", [sys.executable, *app], []),
              ("2 workers, MultiWorkerMirroredStrategy (tfmm.launch)",
               [sys.executable, "-m", "tfmm.launch", "--workers", "2", "--", sys.executable, *app], []),
              ("1 process, MirroredStrategy over 2 logical CPUs", [sys.executable, "-c", MIRRORED_LOGICAL_CPUS],
               ["--strategy", "mirrored"])]
    if args.smoke:  # the distributed setups are tested in tests/train; the smoke run checks this suite's own code
        setups = setups[:1]
    data = ["--set", "data.shapes_config=tiny", "--set", "data.batch_size=16"] if args.smoke else [
        "--set", "data.shapes_config=small"]
    rows = []
    with scratch() as folder:
        for index, (name, command, extra) in enumerate(setups):
            common = ["train", *data, "--set", f"train.epochs={1 if args.smoke else args.epochs}",
                      "--set", f"train.output_dir={folder}", "--run-dir", str(folder / f"run{index}")]
            started = time.time()
            result = subprocess.run([*command, *common, *extra], capture_output=True, text=True)
            wall = time.time() - started
            if result.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            out = result.stdout
            trained = float(re.search(r"trained in (\d+) s", out).group(1))
            steps, epochs = map(int, re.search(r"(\d+) steps × (\d+) epochs", out).groups())
            batch = 16 if args.smoke else 128
            recall = float(re.search(r"text_to_image_recall@1\s+([0-9.]+)", out).group(1))
            rows.append([name, steps, round(trained), round(steps * batch * epochs / max(trained, 1)),
                         recall, round(wall)])
    report.table("One process, two workers, two logical devices: the same training",
                 ["setup", "steps/epoch per worker", "training (s)", "images/s", "val text→image R@1",
                  "wall incl. start-up (s)"], rows,
                 note=("Default retrieval config on `tfmm_shapes/small` (2,000 training scenes), global batch 128, "
                       f"{args.epochs} epochs, one seed; the validation text→image Recall@1 at the end stands in for time "
                       "to a fixed accuracy. Two workers or two logical devices share the same cores here: the table "
                       "measures the overhead of the distributed paths, not a speed-up."))
