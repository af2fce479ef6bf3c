"""The one error type for user mistakes.

A `TfmmError` message names the file, field or value at fault. The CLI prints
it on one line and exits non-zero; programming errors keep their tracebacks.
"""


class TfmmError(ValueError):
    """A user-facing error: bad config, bad data, bad arguments."""


def explain_graph_error(message):
    """The line of a TF graph error that says what was wrong (an assertion's text, not the node trace around it)."""
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(("Graph execution error", "Detected at node", "<stack traces", "[[", "File ")):
            return line.split(" [[")[0].split(" [Op:")[0]
    return message.strip().splitlines()[0] if message.strip() else "invalid input"
