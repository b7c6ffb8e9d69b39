"""Executing a Dask graph: local threads, a LocalCluster of processes, or a remote scheduler."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from pipelines.errors import PipelineError
from pipelines.model import ExecutorConfig


class ExecutorError(PipelineError):
    """The executor could not be started or reached (e.g. a scheduler that does not answer)."""


def execute(targets: Sequence[Any], config: ExecutorConfig, progress: TextIO | None = None) -> list[Any]:
    """Compute ``targets`` (Dask collections) on the configured executor; results in order."""
    if not targets:
        return []
    with session(config, progress) as compute:
        return compute(targets)


@contextlib.contextmanager
def session(config: ExecutorConfig, progress: TextIO | None = None) -> Iterator[Callable[[Sequence[Any]], list[Any]]]:
    """An open executor (one cluster or connection) yielding ``compute(targets) -> results``.

    A run that computes in several phases shares one cluster instead of starting one per phase.
    """
    if config.type == "threads":
        yield lambda targets: _run_threads(targets, progress) if targets else []
        return
    with _client(config) as client:

        def compute(targets: Sequence[Any]) -> list[Any]:
            if not targets:
                return []
            futures = client.compute(list(targets))
            if progress is not None:
                _show_progress(futures, progress)
            return list(client.gather(futures))

        yield compute


def _run_threads(targets: Sequence[Any], progress: TextIO | None) -> list[Any]:
    import dask
    from dask.diagnostics import ProgressBar

    bar = ProgressBar(out=progress) if progress is not None else contextlib.nullcontext()
    with bar:
        return list(dask.compute(*targets, scheduler="threads"))


@contextlib.contextmanager
def _client(config: ExecutorConfig) -> Iterator[Any]:
    """A distributed Client: on a new LocalCluster, or connected to ``config.address``."""
    from distributed import Client, LocalCluster

    if config.type == "processes":
        workers = config.workers or max(1, min(os.cpu_count() or 1, 4))
        with LocalCluster(
            n_workers=workers,
            env=worker_thread_env(workers * config.threads_per_worker),
            threads_per_worker=config.threads_per_worker,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,  # task errors reach the client as one-line StepErrors
        ) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(config.address, timeout=config.connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise ExecutorError(
            f"cannot reach the Dask scheduler at {config.address} within {config.connect_timeout:g} s "
            f"({' '.join(str(exc).split())}); is `dask scheduler` running there?"
        ) from None
    with client:
        yield client


def worker_thread_env(tasks_at_once: int) -> dict[str, str]:
    """Thread limits for worker processes, so that concurrent tasks share the cores without oversubscribing."""
    threads = str(max(1, (os.cpu_count() or 1) // max(1, tasks_at_once)))
    return {name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _stream_progress_bar_class() -> type:
    from distributed.diagnostics.progressbar import TextProgressBar

    class StreamProgressBar(TextProgressBar):  # type: ignore[misc]
        """distributed's text progress bar, drawn on a chosen stream instead of stdout."""

        def __init__(self, keys: Any, out: TextIO, **kwargs: Any) -> None:
            self.out = out
            super().__init__(keys, **kwargs)

        def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
            frac = (1 - remaining / all) if all else 1.0
            bar = "#" * int(self.width * frac)
            self.out.write(f"\r[{bar:<{self.width}}] | {int(100 * frac)}% Completed | {self.elapsed:.1f}s")
            self.out.flush()

        def _draw_stop(self, **kwargs: Any) -> None:
            self.out.write("\n")
            self.out.flush()

    return StreamProgressBar


def _show_progress(futures: Any, out: TextIO) -> None:
    """Show progress of ``futures`` on ``out`` until they finish (or one fails)."""
    _stream_progress_bar_class()(futures, out=out)
