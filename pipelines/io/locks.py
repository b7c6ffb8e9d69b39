"""Exclusive output locks, so that two processes never write the same output at once.

A lock is an advisory ``fcntl.flock`` on a small file beside the output, ``.NAME.lock`` (for a
folder output ``out/``: ``.out.lock`` beside it), holding the owner's process id. A second
process asking for the same lock is refused at once with a one-line error naming the output and
the owner; it never waits. The kernel drops the lock when its owner exits, however it exits, so
a killed run never leaves a stale lock; the file is removed when the lock is released. URLs
(``s3://...``) and outputs whose folder cannot be made or written are not locked (the write then
fails with its own error). Taking a lock creates the output's folder if it is missing. ``run_locks`` scopes locks taken while planning a pipeline run to
the whole run.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import PipelineError


class OutputLockedError(PipelineError):
    """Another process is writing the same output."""


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of an output file or folder: ``.NAME.lock`` beside it."""
    path = Path(os.path.abspath(target))
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def output_lock(target: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the lock on ``target`` for the block; :class:`OutputLockedError` if another process has it.

    Where no lock file can be made (a read-only or missing folder, a URL) nothing is locked: the
    write itself then fails with its own error naming the output.
    """
    acquired = None if "://" in str(target) else _acquire(target)
    try:
        yield
    finally:
        if acquired is not None:
            _release(*acquired)


def _acquire(target: str | os.PathLike[str]) -> tuple[int, Path] | None:
    path = lock_path(target)
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # the output's folder, made anyway
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputLockedError(
                f"{target}: another process (pid {owner}) is writing this output; wait for it to "
                f"finish or stop it (lock file {path})"
            ) from None
        try:  # the previous owner may have removed the file between our open and our lock
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = -1
        if current == os.fstat(fd).st_ino:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd, path
        os.close(fd)


def _release(fd: int, path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()  # while still holding the lock: a waiting opener then retries (see _acquire)
    os.close(fd)


_RUN: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar(
    "pipelines_run_locks", default=None
)


@contextlib.contextmanager
def run_locks() -> Iterator[None]:
    """Scope for :func:`hold`: every lock taken inside is held until the block ends."""
    with contextlib.ExitStack() as stack:
        token = _RUN.set(stack)
        try:
            yield
        finally:
            _RUN.reset(token)


def hold(target: str | os.PathLike[str]) -> None:
    """Lock ``target`` until the current :func:`run_locks` scope ends (nothing outside a scope).

    Taking the same target twice in one scope is a no-op.
    """
    stack = _RUN.get()
    if stack is None:
        return
    held: set[Path] = stack.__dict__.setdefault("_held", set())
    key = lock_path(target)
    if key not in held:
        stack.enter_context(output_lock(target))
        held.add(key)
