"""The ``esrgan`` command: upscale, info, models, engines, interpolate, convert, export.

Every user error is printed as one line on stderr with a non-zero exit code (2 for bad
arguments); ``--debug`` shows the traceback instead. A reader that closes stdout early ends
the command quietly (:mod:`esrgan_plugin.cli.session`). Each command lives in its own module and
adds itself to the parser; other packages add commands through the ``esrgan.commands`` entry
point group.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import NoReturn

from esrgan_plugin.cli import engines, export, models, session, upscale
from esrgan_plugin.errors import EsrganError, UsageError
from esrgan_plugin.runtime import quiet_openmp_waits
from pipelines.api import (
    OneLineErrorParser,
    PipelineError,
    exit_code,
    interrupts_as_exceptions,
    signal_name,
)

COMMANDS_GROUP = "esrgan.commands"
"""Entry-point group of extra subcommands: each names a ``register(subparsers)`` function."""

EXIT_ERROR = 1
EXIT_USAGE = 2
INTERRUPTED_NOTE = "finished outputs are kept, the one being written was discarded"

__all__ = ["COMMANDS_GROUP", "UsageError", "build_parser", "main", "run"]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``esrgan`` parser with every subcommand (built-in and from entry points).

    Where ``command`` names a built-in subcommand, the entry points' commands are left out:
    their parsers cannot parse it, and registering them imports their packages (0.1-0.2 s of
    the start of every command, measured 2026-12-03).
    """
    parser = OneLineErrorParser(prog="esrgan", description="ESRGAN super-resolution.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (upscale, models, engines, export):
        module.register(sub)
    if command is None or command not in sub.choices:
        for point in entry_points(group=COMMANDS_GROUP):
            point.load()(sub)
    session.add_models_dir_options(parser, sub)
    return parser


def named_command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word after the global options; None where
    anything else comes first (``--help``, an unknown or abbreviated option)."""
    words = iter(argv)
    for word in words:
        if word == "--debug" or word.startswith("--models-dir="):
            continue
        if word == "--models-dir":
            next(words, None)
            continue
        return None if word.startswith("-") else word
    return None


def run() -> NoReturn:
    """The ``esrgan`` console script: :func:`main` on the process's arguments, then the end of
    the process (:func:`session.end_process`: at once where the command left its graphs to it)."""
    session.end_process_after_command()
    session.end_process(main())


def main(argv: Sequence[str] | None = None) -> int:
    quiet_openmp_waits()  # before anything imports torch: sleeping, not spinning, OpenMP threads
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(named_command(words))
    args = parser.parse_args(words)
    args.command_line = ["esrgan", *words]
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="esrgan: %(message)s"
    )
    try:
        with interrupts_as_exceptions():
            session.apply_models_dirs(args)
            code = int(args.func(args) or 0)
            session.flush_stdout()  # a closed pipe shows here, not at interpreter exit
            return code
    except BrokenPipeError as exc:
        if args.debug:
            raise
        if session.stdout_closed():  # `esrgan models | head -2`: the reader has what it wanted
            session.silence_stdout()
            return session.EXIT_CLOSED_PIPE
        print(f"esrgan: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (EsrganError, PipelineError) as exc:
        if args.debug:
            raise
        print(f"esrgan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
    except KeyboardInterrupt as exc:
        print(f"esrgan: interrupted ({signal_name(exc)}); {INTERRUPTED_NOTE}", file=sys.stderr)
        return exit_code(exc)
