"""What every ``esrgan`` command shares: model folders on the command line, a closed stdout, and
the console script's quick exit.

``--models-dir DIR`` (before the command, or after ``upscale``, ``info`` and ``models``) names
model folders for the command (:mod:`esrgan_plugin.models.folders`). A reader that closes the
pipe early (``esrgan models | head -2``) ends the command quietly with status 141 (128 +
SIGPIPE, what a shell reports for a command killed by a closed pipe): no traceback, no
"Exception ignored" message when Python flushes its streams on exit.

A command run by the console script may leave large objects to the process's end
(:func:`leave_to_exit`): the process then ends with ``os._exit`` once its streams are flushed,
as compilers do with their last allocations. Freeing the fast start's compiled OpenVINO graphs
and tearing the interpreter down took 0.4 s of a 14 s command (2026-12-03); called as a
function (:func:`esrgan_plugin.cli.main`, as the tests do), nothing is held and nothing exits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import sys
from typing import Any, NoReturn

EXIT_CLOSED_PIPE = 128 + 13
"""Exit status after the reader of stdout went away (128 + SIGPIPE)."""

MODELS_DIR_COMMANDS = ("upscale", "info", "models")
"""Subcommands that also take ``--models-dir`` after their name."""

_HELP = (
    "a folder of model files, each usable as --model by its stem (repeatable; "
    "adds to $ESRGAN_MODELS_DIR)"
)


def add_models_dir_options(
    parser: argparse.ArgumentParser,
    sub: argparse._SubParsersAction[Any],
) -> None:
    """``--models-dir`` on the ``esrgan`` parser and on the subcommands that load models."""
    parser.add_argument("--models-dir", action="append", default=[], metavar="DIR", help=_HELP)
    for name in MODELS_DIR_COMMANDS:
        command = sub.choices.get(name)
        if command is not None:
            command.add_argument(
                "--models-dir",
                action="append",
                default=[],
                dest="command_models_dirs",
                metavar="DIR",
                help=_HELP,
            )


def apply_models_dirs(args: argparse.Namespace) -> None:
    """Make the folders given on the command line the first model folders (a folder that does
    not exist is a usage error). Imported here, not at start-up: ``--help`` stays light."""
    folders = [*getattr(args, "models_dir", []), *getattr(args, "command_models_dirs", [])]
    if folders:
        from esrgan_plugin.models.folders import use_models_dirs

        use_models_dirs(folders)


def flush_stdout() -> None:
    """Write out what is buffered now, so that a closed pipe shows inside the command's error
    handling rather than at interpreter exit."""
    sys.stdout.flush()


def stdout_closed() -> bool:
    """Whether the reader of stdout has gone (its pipe reports an error when polled); True when
    stdout cannot be polled at all (then the broken pipe can only be stdout's)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return True
    if not hasattr(select, "poll"):
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def silence_stdout() -> None:
    """Point stdout at the null device, so that flushing it on exit fails no more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


class _ProcessEnd:
    """Whether the process ends when the command returns, and what is left for that end."""

    ends_after_command = False
    held: list[object] = []


def end_process_after_command() -> None:
    """Called by the console script before the command: the process ends when it returns."""
    _ProcessEnd.ends_after_command = True


def leave_to_exit(obj: object) -> None:
    """Keep ``obj`` until the process ends rather than freeing it now, where the process ends
    right after the command (else nothing happens and ``obj`` is freed as usual)."""
    if _ProcessEnd.ends_after_command:
        _ProcessEnd.held.append(obj)


def end_process(code: int) -> NoReturn:
    """End the process with ``code``: at once, without freeing anything, when the command left
    objects to the exit (its outputs are written and renamed, its streams flushed here); else
    through the interpreter's usual exit."""
    if not _ProcessEnd.held:
        raise SystemExit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away wants nothing
            stream.flush()
    os._exit(code)
