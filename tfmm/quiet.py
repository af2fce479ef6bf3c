"""Hides the lines TensorFlow's C++ runtime prints to stderr on every start and every TFLite conversion.

TensorFlow 2.21 writes its start-up lines ("Could not find cuda drivers", "This TensorFlow binary
is optimized to use…", "failed call to cuInit") before its logging honours `TF_CPP_MIN_LOG_LEVEL`,
and the TFLite converter and interpreter print theirs ("fully_quantize: 0, …", "Created TensorFlow
Lite XNNPACK delegate") with no switch at all, straight to file descriptor 2. `known_notices_hidden()`
points that descriptor at a temporary file for the duration of such a call, then replays every line
that is not a known notice, so a real error still shows. `--verbose` on any command (or
`TFMM_VERBOSE=1`) shows everything.
"""

import contextlib
import os
import sys
import tempfile
import warnings

KNOWN_NOTICES = (
    "All log messages before absl::InitializeLog()",
    "cudart_stub.cc",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
    "cuda_platform.cc",
    "Unable to register cu",  # cuDNN/cuFFT/cuBLAS factories registered twice
    "computation_placer.cc",
    "oneDNN custom operations are on",
    "Created TensorFlow Lite XNNPACK delegate",
    "fully_quantize: ",
    "Estimated count of arithmetic ops",
)


def verbose():
    return os.environ.get("TFMM_VERBOSE") == "1" or "--verbose" in sys.argv[1:]


@contextlib.contextmanager
def known_notices_hidden():
    """Within the block, lines written to stderr (by C++ or Python) that are known notices are dropped."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (an embedding host): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            with warnings.catch_warnings():
                # TensorFlow's own quantisation debugger still builds the deprecated tf.lite.Interpreter.
                warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
                yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines()
            kept = [line for line in lines if line.strip() and not any(notice in line for notice in KNOWN_NOTICES)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def import_tensorflow():
    """Imports TensorFlow (once), hiding its start-up notices unless verbose; returns the module."""
    if verbose():
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with known_notices_hidden():
        import tensorflow

        tensorflow.config.list_physical_devices()  # device discovery prints the cuInit line
    return tensorflow
