"""SIGINT and SIGTERM as exceptions, so an interrupted command cleans up and exits 130 or 143.

Python turns SIGINT into ``KeyboardInterrupt`` but lets SIGTERM kill the process at once, which
skips ``finally`` blocks: temporary files of atomic writes would be left behind. Inside
:func:`interrupts_as_exceptions` both signals raise :class:`Interrupted` (a ``KeyboardInterrupt``)
in the main thread; the command unwinds (a half-written output is discarded, finished outputs
are kept) and exits with ``128 + signal number``, the shell's convention.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The command was stopped by ``signum``; :attr:`exit_code` is ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


def signal_name(exc: KeyboardInterrupt) -> str:
    return signal.Signals(exc.signum).name if isinstance(exc, Interrupted) else "SIGINT"


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM raise :class:`Interrupted`; old handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
