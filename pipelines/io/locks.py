"""Exclusive output locks, so that two processes never write the same output at once.

A lock is an advisory ``fcntl.flock`` on a small file beside the output, ``.NAME.lock`` (for a
folder output ``out/``: ``.out.lock`` beside it), holding the owner's process id. A second
process asking for the same lock is refused at once with a one-line error naming the output and
the owner; it never waits. The kernel drops the lock when its owner exits, however it exits, so
a killed run never leaves a stale lock; the file is removed when the lock is released.

One lock per output location, whatever the command: a path pattern such as ``out/{name}.png``
is locked as its folder ``out`` (:func:`output_location`), exactly as ``esrgan upscale -o out/``
locks it. A lock that cannot be made (a full disk, a read-only folder) is a one-line
:class:`LockFileError` naming the lock file, and leaves neither the file nor a folder made for it.
URLs (``s3://...``) and file systems without ``flock`` are not locked. Taking a lock creates the
folder the lock file goes in if it is missing. ``run_locks`` scopes locks taken while planning a
pipeline run to the whole run.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import os
import string
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import PipelineError


class OutputLockedError(PipelineError):
    """Another process is writing the same output."""


class LockFileError(PipelineError):
    """The lock file of an output could not be made (a full disk, a read-only folder)."""


def output_location(pattern: str) -> str:
    """The file or folder a path pattern writes into, the one to lock for it.

    A path without placeholders is itself; a pattern is the folder above its first placeholder
    (``out/{name}.png`` and ``out/{parent}/{name}_x4.png`` -> ``out``; ``{name}.png`` -> ``.``),
    so that every command writing into a folder takes the same lock.
    """
    prefix = ""
    for literal, field, _, _ in string.Formatter().parse(pattern):
        prefix += literal
        if field is not None:
            return os.path.dirname(prefix) or "."
    return pattern


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of an output file or folder: ``.NAME.lock`` beside it."""
    path = Path(os.path.abspath(target))
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def output_lock(target: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the lock on ``target`` for the block.

    :class:`OutputLockedError` if another process has it; :class:`LockFileError` if the lock file
    cannot be made (nothing is left behind then).
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
        made = _make_folder(target, path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            _remove_folders(made)
            raise _cannot_make(target, path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputLockedError(
                f"{target}: another process (pid {owner}) is writing this output; wait for it to "
                f"finish or stop it (lock file {path})"
            ) from None
        except OSError:  # a file system without flock (some network mounts): not locked
            _discard(fd, path, made)
            return None
        try:  # the previous owner may have removed the file between our open and our lock
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = -1
        if current != os.fstat(fd).st_ino:
            os.close(fd)
            continue
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # a full disk: no half-made lock file stays behind
            _discard(fd, path, made)
            raise _cannot_make(target, path, exc) from None
        return fd, path


def _make_folder(target: str | os.PathLike[str], path: Path) -> list[Path]:
    """Make the lock file's folder if missing; the folders made, deepest first (to undo)."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_folders(missing)
        raise _cannot_make(target, path, exc) from None
    return missing


def _remove_folders(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; a folder someone else filled meanwhile stays
        with contextlib.suppress(OSError):
            folder.rmdir()


def _discard(fd: int, path: Path, made: list[Path]) -> None:
    """Remove a lock file we made and hold, and the folders made for it."""
    with contextlib.suppress(OSError):
        path.unlink()
    os.close(fd)
    _remove_folders(made)


def _cannot_make(target: str | os.PathLike[str], path: Path, exc: OSError) -> LockFileError:
    reason = exc.strerror or str(exc)
    hint = (
        "; free some space and run again"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT)
        else "; is the output's folder writable?"
    )
    return LockFileError(f"{target}: cannot make the lock file {path} ({reason}){hint}")


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
