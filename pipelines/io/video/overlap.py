"""Running decode, transform and encode at the same time: a reader thread, the caller, a writer thread.

The transform (a network, the expensive part) runs in the calling thread on batches that the
reader thread has already decoded, while the writer thread encodes the previous batch. Both
queues are bounded, so at most a few batches exist at once whatever the length of the input: the
memory is set by the batch size. The first error in any of the three stops all of them and is
raised in the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

DEPTH = 2
"""Batches waiting in each queue."""

_DONE = object()


class _Stopped(Exception):
    """Raised inside a helper thread when another part failed."""


def overlapped(
    batches: Iterable[In],
    transform: Callable[[In], Out],
    consume: Callable[[Out], None],
    depth: int = DEPTH,
) -> int:
    """``consume(transform(b))`` for every ``b`` of ``batches``, the three stages overlapping; batches done."""
    inbox: queue.Queue[Any] = queue.Queue(maxsize=depth)
    outbox: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(box: queue.Queue[Any], item: Any) -> None:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(box: queue.Queue[Any]) -> Any:
        while not stop.is_set():
            try:
                return box.get(timeout=0.1)
            except queue.Empty:
                continue
        raise _Stopped

    def read() -> None:
        try:
            for batch in batches:
                put(inbox, batch)
            put(inbox, _DONE)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)
            stop.set()

    def write() -> None:
        try:
            while (item := get(outbox)) is not _DONE:
                consume(item)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)
            stop.set()

    reader = threading.Thread(target=read, name="video-decode", daemon=True)
    writer = threading.Thread(target=write, name="video-encode", daemon=True)
    reader.start()
    writer.start()
    count = 0
    try:
        while (batch := get(inbox)) is not _DONE:
            put(outbox, transform(batch))
            count += 1
        put(outbox, _DONE)
    except _Stopped:
        pass
    except BaseException as exc:
        errors.append(exc)
        stop.set()
    writer.join()
    stop.set()  # the writer is done: release a reader still waiting to put
    reader.join()
    if errors:
        raise errors[0]
    return count
