"""What `import tfmm` sets in the environment before TensorFlow starts, and that a user's own value wins."""

import os
import subprocess
import sys

import pytest

SCRIPT = "import os, tfmm; print(os.environ['TF_ENABLE_ONEDNN_OPTS'], os.environ['KERAS_BACKEND'])"


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("0", "0")])
def test_onednn_kernels_are_on_unless_the_user_says_otherwise(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [expected, "tensorflow"]
