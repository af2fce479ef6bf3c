"""`tfmm.cli.main`: the exit status of an app command."""

import pytest

from tfmm import cli
from tfmm.errors import TfmmError


class _Made:
    """Stands for what a command hands back to Python callers (a trained task)."""


def _fail(args):
    raise TfmmError("data.batch_size: must be > 0, got 0")


@pytest.mark.parametrize(("handler", "status"), [
    (lambda args: _Made(), 0),  # `train-vqvae` returns its task: still a clean exit, not SystemExit(task) = 1
    (lambda args: {"prompts": ["a red circle"]}, 0),
    (lambda args: None, 0),
    (lambda args: 3, 3),
    (lambda args: True, 0),
    (_fail, 2),
])
def test_exit_status_is_an_int_whatever_the_command_returns(handler, status, capsys):
    app = cli.AppParser("retrieval", "test", lambda args: None)
    app.command("work", handler, "a command", model=False)
    assert cli.main(app.parser, ["work"]) == status
    err = capsys.readouterr().err
    assert err == ("error: data.batch_size: must be > 0, got 0\n" if status == 2 else "")
