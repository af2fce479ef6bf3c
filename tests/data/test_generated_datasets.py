"""Two processes that need the same generated dataset: one builds it, the other waits for it and reads it."""

import subprocess
import sys
import time

import tensorflow_datasets as tfds
from filelock import FileLock

from tfmm.data import shapes_builder
from tfmm.data.generated_datasets import build_lock_path

CHILD = """
import sys
import tfmm
from tfmm.data import shapes_builder
print("ready", flush=True)
print(sum(1 for _ in shapes_builder.load("test", config="tiny", data_dir=sys.argv[1])))
"""


def test_a_second_process_waits_for_the_build_and_reads_it(tmp_path):
    builder = tfds.builder("tfmm_shapes/tiny", data_dir=str(tmp_path))
    assert not builder.is_prepared()
    with FileLock(build_lock_path(builder)):  # this process is "the first builder"
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready", child.communicate()
        deadline = time.monotonic() + 10  # without the lock the child builds tiny (~1 s) and exits in this time
        while time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.5)
        assert child.poll() is None, f"the second process did not wait for the build: {child.communicate()}"
        builder.download_and_prepare()
    expected = sum(1 for _ in shapes_builder.load("test", config="tiny", data_dir=str(tmp_path)))
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-2000:]
    assert int(out.split()[-1]) == expected > 0
    versions = [p.name for p in (tmp_path / "tfmm_shapes" / "tiny").iterdir()]
    assert versions == [str(shapes_builder.TfmmShapes.VERSION)], versions  # no half-built copy left beside it
