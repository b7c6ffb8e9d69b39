"""The console script's quick exit: objects left to the process's end are never freed, the
streams are flushed and the command's status is the process's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from esrgan_plugin.cli import session

_SCRIPT = """
import atexit, sys
from esrgan_plugin.cli import session
atexit.register(lambda: print("teardown ran"))
{setup}
print("output", end="")
session.end_process(3)
"""


@pytest.mark.parametrize(
    ("setup", "teardown"),
    [
        ("session.end_process_after_command(); session.leave_to_exit(object())", False),
        ("session.end_process_after_command()", True),  # nothing left to the exit
        ("session.leave_to_exit(object())", True),  # a command called as a function
    ],
)
def test_the_process_ends_at_once_only_when_the_command_left_objects_to_it(
    setup: str, teardown: bool
) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(setup=setup)], capture_output=True, text=True
    )
    assert run.returncode == 3, run.stderr
    assert run.stdout == "output" + ("teardown ran\n" if teardown else "")


def test_a_command_called_as_a_function_keeps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session._ProcessEnd, "held", [])
    session.leave_to_exit(object())
    assert session._ProcessEnd.held == []
    with pytest.raises(SystemExit) as ended:
        session.end_process(0)
    assert ended.value.code == 0
