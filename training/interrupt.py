"""SIGINT/SIGTERM during training: note the request, finish the iteration, write a checkpoint,
then exit (a preempted SLURM job resumes with ``--resume``)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the first SIGINT/SIGTERM; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Catch SIGINT/SIGTERM while the block runs (main thread only; elsewhere nothing is caught)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous: dict[int, Any] = {s: signal.signal(s, request._handle) for s in HANDLED}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
