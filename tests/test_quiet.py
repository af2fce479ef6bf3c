"""A command's stderr passes through `known_notices_filtered`: known notices written straight to descriptor 2 at
any point are dropped, everything else arrives whole and in order, even when the process aborts right after."""

import os
import subprocess
import sys

SCRIPT = r"""
import os, sys
from tfmm.quiet import known_notices_filtered

with known_notices_filtered():
    os.write(2, b"E0000 util.cc:131] oneDNN supports DT_INT64 only on platforms with AVX-512. Falling back\n")
    os.write(2, b"E0000 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout 'x/Relu'\n")
    print("a warning the user must see", file=sys.stderr, flush=True)
    os.write(2, b"progress 1/2\r")
    os.write(2, b"progress 2/2\rI0000 cpu_feature_guard.cc:210] This TensorFlow binary is optimized\n")
    os.write(2, b"last words before the crash\n")
    if sys.argv[1] == "abort":
        os.abort()
print("after the command", file=sys.stderr)
"""


def run(mode, **env):
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, timeout=120,
                          env={**os.environ, **env})


def test_known_notices_are_dropped_and_other_lines_kept_in_order():
    result = run("normal")
    assert result.returncode == 0
    assert result.stderr == (b"a warning the user must see\nprogress 1/2\rprogress 2/2\r"
                             b"last words before the crash\nafter the command\n")


def test_a_crash_loses_no_line_written_before_it():
    result = run("abort")
    assert result.returncode != 0
    assert result.stderr == b"a warning the user must see\nprogress 1/2\rprogress 2/2\rlast words before the crash\n"


def test_verbose_shows_everything():
    result = run("normal", TFMM_VERBOSE="1")
    assert b"oneDNN supports DT_INT64" in result.stderr and b"cpu_feature_guard.cc" in result.stderr
