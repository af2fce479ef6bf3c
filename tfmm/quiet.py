"""Hides the lines TensorFlow's C++ runtime prints to stderr on every start and every TFLite conversion.

TensorFlow 2.21 writes its start-up lines ("Could not find cuda drivers", "This TensorFlow binary
is optimized to use…", "failed call to cuInit") before its logging honours `TF_CPP_MIN_LOG_LEVEL`,
and the TFLite converter and interpreter print theirs ("fully_quantize: 0, …", "Created TensorFlow
Lite XNNPACK delegate") with no switch at all, straight to file descriptor 2. `known_notices_hidden()`
points that descriptor at a temporary file for the duration of such a call, then replays every line
that is not a known notice, so a real error still shows. Some notices come at any point of a run (oneDNN's
"supports DT_INT64 only on platforms with AVX-512", at the first graph it rewrites), so a command runs
whole inside `known_notices_filtered()`: descriptor 2 becomes a pipe to a small relay process that passes
lines on as they come, known notices left out. `--verbose` on any command (or `TFMM_VERBOSE=1`) shows everything.
"""

import contextlib
import os
import subprocess
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
    "oneDNN supports DT_INT64 only on platforms with AVX-512",  # an E-level line for a harmless fallback to Eigen
    "remapper failed: INVALID_ARGUMENT: Mutation::Apply error",  # Grappler skips one fusion; the graph runs unfused
)


def _is_notice(line):
    return any(notice in line for notice in KNOWN_NOTICES)


def verbose():
    return os.environ.get("TFMM_VERBOSE") == "1" or "--verbose" in sys.argv[1:]


def _saved_stderr():
    """A copy of descriptor 2 to put back afterwards, or None where nothing is to be hidden: verbose, or no usable
    descriptor 2 (an embedding host)."""
    if verbose():
        return None
    try:
        sys.stderr.flush()
        return os.dup(2)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def known_notices_hidden():
    """Within the block, lines written to stderr (by C++ or Python) that are known notices are dropped."""
    saved = _saved_stderr()
    if saved is None:
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
            kept = [line for line in lines if line.strip() and not _is_notice(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


# The relay: a bare Python (no site, no tfmm, no TensorFlow) that copies its stdin to its stderr piece by piece
# (a piece ends at a newline or at a progress bar's carriage return), dropping the pieces that hold a notice given
# as an argument. It ignores Ctrl+C and SIGTERM and stops at end of input, so it outlives the command and passes on
# even the last lines of a crash (an abort in C++), which a thread inside the command would lose.
_RELAY = """
import os, re, signal, sys
for name in ("SIGINT", "SIGTERM", "SIGHUP"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
notices = [notice.encode() for notice in sys.argv[1:]]
pending = b""
while chunk := os.read(0, 65536):
    *pieces, pending = re.split(rb"(?<=[\\r\\n])", pending + chunk)
    kept = b"".join(piece for piece in pieces if not any(notice in piece for notice in notices))
    if kept:
        os.write(2, kept)
if pending:
    os.write(2, pending)
"""


@contextlib.contextmanager
def known_notices_filtered():
    """For a whole command: lines written to stderr (by C++ or Python, at any point) that are known notices are
    dropped as they come; every other line is passed on at once, through a pipe to a relay process."""
    saved = _saved_stderr()
    if saved is None:
        yield
        return
    relay = subprocess.Popen([sys.executable, "-I", "-S", "-c", _RELAY, *KNOWN_NOTICES], stdin=subprocess.PIPE)
    os.dup2(relay.stdin.fileno(), 2)
    relay.stdin.close()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer in this process goes: the relay passes on the rest and stops
        os.close(saved)
        try:
            relay.wait(timeout=5)  # longer only while a child process of the command still holds the pipe
        except subprocess.TimeoutExpired:
            pass


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
