"""Imports TensorFlow without the lines its C++ runtime prints to stderr on every start.

TensorFlow 2.21 writes its start-up lines ("Could not find cuda drivers", "This TensorFlow binary
is optimized to use…", "failed call to cuInit") before its logging honours `TF_CPP_MIN_LOG_LEVEL`,
straight to file descriptor 2. `import_tensorflow` runs the import and the device discovery with
that descriptor pointed at a temporary file, then replays every line that is not one of those known
notices, so a real error still shows. `--verbose` on any command (or `TFMM_VERBOSE=1`) shows everything.
"""

import os
import sys
import tempfile

KNOWN_NOTICES = (
    "All log messages before absl::InitializeLog()",
    "cudart_stub.cc",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
    "cuda_platform.cc",
    "Unable to register cu",  # cuDNN/cuFFT/cuBLAS factories registered twice
    "computation_placer.cc",
    "oneDNN custom operations are on",
)


def verbose():
    return os.environ.get("TFMM_VERBOSE") == "1" or "--verbose" in sys.argv[1:]


def import_tensorflow():
    """Imports TensorFlow (once) quietly unless verbose; returns the module."""
    if "tensorflow" in sys.modules or verbose():
        if verbose():
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        import tensorflow

        return tensorflow
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (an embedding host): nothing to hide
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()  # device discovery prints the cuInit line
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines()
    kept = [line for line in lines if line.strip() and not any(notice in line for notice in KNOWN_NOTICES)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
    return tensorflow
