"""Writing files so that a crash never leaves a half-written one in place."""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path):
    """Yields a temporary path beside `path` (same suffixes); on success it is synced and renamed onto
    `path`, on failure removed. Readers see the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)  # all of them: Keras wants weight files to end in ".weights.h5"
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:len(path.name) - len(suffix)]}-", suffix=suffix)
    os.close(handle)
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
