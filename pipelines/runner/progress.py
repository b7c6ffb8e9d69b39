"""Console progress of a run: outputs done / total (files, Zarr chunks, artefacts), rate and ETA.

One line on a stream, redrawn at most twice a second: the threaded scheduler reports through a
Dask callback, a distributed client through its futures as they complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, TextIO


class ProgressLine:
    """``[####    ] 37/256 outputs | 14% Completed | 2.10/s | ETA 1m44s | 17.6s`` on ``out``.

    ``unit`` names what is counted (outputs; a video job counts frames).
    """

    def __init__(
        self,
        total: int,
        out: TextIO,
        width: int = 24,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "outputs",
    ) -> None:
        self.total, self.out, self.width, self.interval, self.clock = (
            total,
            out,
            width,
            interval,
            clock,
        )
        self.unit = unit
        self.start = self.last = clock()
        self.done = 0

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more outputs done; redraw if the last draw is old enough."""
        self.done += count
        now = self.clock()
        if now - self.last >= self.interval or self.done >= self.total:
            self.last = now
            self.draw()

    def draw(self) -> None:
        self.out.write("\r" + self.text())
        self.out.flush()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        self.draw()
        self.out.write("\n")
        self.out.flush()

    def text(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        frac = self.done / self.total if self.total else 1.0
        rate = self.done / elapsed
        eta = (
            format_seconds((self.total - self.done) / rate)
            if rate > 0 and self.done < self.total
            else "-"
        )
        bar = "#" * int(self.width * frac)
        return (
            f"[{bar:<{self.width}}] {self.done}/{self.total} {self.unit} | {int(100 * frac)}% Completed | "
            f"{rate:.2f}/s | ETA {eta} | {elapsed:.1f}s"
        )


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h07m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def target_keys(targets: Iterable[Any]) -> set[Any]:
    """The keys of the Dask collections among ``targets`` (the outputs a run is counted in)."""
    from dask.base import is_dask_collection
    from dask.core import flatten

    return {key for t in targets if is_dask_collection(t) for key in flatten(t.__dask_keys__())}


def threads_callback(keys: Collection[Any], line: ProgressLine) -> Any:
    """A Dask callback for the local schedulers that advances ``line`` as each of ``keys`` finishes."""
    from dask.callbacks import Callback

    class _Progress(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if key in keys:
                line.advance()

        def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
            line.finish()

    return _Progress()


def follow_futures(futures: list[Any], line: ProgressLine | None) -> Iterator[tuple[int, Any]]:
    """(position, result) of distributed ``futures`` as each completes, releasing it at once.

    The list is emptied as it is consumed, so that no future outlives its result; the first
    failure is raised (the remaining futures are cancelled with the client's run).
    """
    from distributed import as_completed

    where = {future.key: i for i, future in enumerate(futures)}
    pending = as_completed(futures, with_results=True, raise_errors=True)
    futures.clear()
    try:
        for future, value in pending:
            position = where[future.key]
            future.release()
            del future
            if line is not None:
                line.advance()
            yield position, value
    finally:
        if line is not None:
            line.finish()
