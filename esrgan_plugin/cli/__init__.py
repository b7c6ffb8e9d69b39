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

from esrgan_plugin.cli import engines, export, models, session, upscale
from esrgan_plugin.errors import EsrganError, UsageError
from esrgan_plugin.runtime import quiet_openmp_waits
from pipelines.api import PipelineError, exit_code, interrupts_as_exceptions, signal_name

COMMANDS_GROUP = "esrgan.commands"
"""Entry-point group of extra subcommands: each names a ``register(subparsers)`` function."""

EXIT_ERROR = 1
EXIT_USAGE = 2
INTERRUPTED_NOTE = "finished outputs are kept, the one being written was discarded"

__all__ = ["COMMANDS_GROUP", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``esrgan`` parser with every subcommand (built-in and from entry points)."""
    parser = argparse.ArgumentParser(prog="esrgan", description="ESRGAN super-resolution.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (upscale, models, engines, export):
        command.register(sub)
    for point in entry_points(group=COMMANDS_GROUP):
        point.load()(sub)
    session.add_models_dir_options(parser, sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_openmp_waits()  # before anything imports torch: sleeping, not spinning, OpenMP threads
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = ["esrgan", *(sys.argv[1:] if argv is None else argv)]
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
