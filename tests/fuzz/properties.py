"""The property every fuzzed parser must have, checked in one place.

A parser given any bytes returns a correct result or raises the project's own error type with a
one-line message; never another exception, never a hang (a per-example time limit), never more
memory than a stated bound (growth of the process's peak RSS during one example).
"""

from __future__ import annotations

import contextlib
import resource
import signal
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

TIME_LIMIT_S = 60
"""Longest one parser call may take on the shared 2-core CI machine before it counts as a hang."""

MEMORY_BOUND_MIB = 768
"""Largest growth of the process's peak RSS one parser call may cause."""

MAX_MESSAGE = 2000
"""Longest acceptable error message (characters): one readable line, not a dump."""


class Hang(AssertionError):
    """A parser call ran past :data:`TIME_LIMIT_S`."""


@contextlib.contextmanager
def time_limit(seconds: int = TIME_LIMIT_S) -> Iterator[None]:
    """Fail with :class:`Hang` if the block runs longer than ``seconds`` (SIGALRM, main thread)."""

    def _alarm(signum: int, frame: object) -> None:
        raise Hang(f"parser call still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def result_or_error(
    call: Callable[[], T], errors: type[BaseException] | tuple[type[BaseException], ...]
) -> T | BaseException:
    """Run ``call``; return its result or the allowed error it raised, after checking the property."""
    before = _peak_rss_mib()
    try:
        with time_limit():
            outcome: T | BaseException = call()
    except Hang:
        raise
    except errors as exc:
        outcome = exc
        check_message(exc)
    grown = _peak_rss_mib() - before
    assert grown <= MEMORY_BOUND_MIB, f"peak RSS grew by {grown:.0f} MiB in one call"
    return outcome


def check_message(exc: BaseException) -> None:
    """The error's message is one non-empty line of reasonable length."""
    issues = getattr(exc, "issues", None)  # a pipeline ValidationError: one line per issue
    for text in [str(issue) for issue in issues] if issues else [str(exc)]:
        _check_line(exc, text)


def _check_line(exc: BaseException, text: str) -> None:
    assert text.strip(), f"{type(exc).__name__} with an empty message"
    assert "\n" not in text, f"{type(exc).__name__} message spans lines: {text!r}"
    assert len(text) <= MAX_MESSAGE, f"{type(exc).__name__} message of {len(text)} characters"
