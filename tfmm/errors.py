"""The one error type for user mistakes.

A `TfmmError` message names the file, field or value at fault. The CLI prints
it on one line and exits non-zero; programming errors keep their tracebacks.
"""


class TfmmError(ValueError):
    """A user-facing error: bad config, bad data, bad arguments."""
