"""Executing a Dask graph: local threads, a LocalCluster of processes, or a remote scheduler."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from pipelines.config.schema import ExecutorConfig
from pipelines.errors import PipelineError
from pipelines.runner.memory import return_freed_memory
from pipelines.runner.progress import ProgressLine, follow_futures, target_keys, threads_callback
from pipelines.runner.scheduler_probe import SchedulerUnreachable, check_scheduler


class ExecutorError(PipelineError):
    """The executor could not be started or reached (e.g. a scheduler that does not answer)."""


def execute(
    targets: Sequence[Any], config: ExecutorConfig, progress: TextIO | None = None
) -> list[Any]:
    """Compute ``targets`` on the configured executor; results in order (see :func:`session`)."""
    if not targets:
        return []
    with session(config, progress) as compute:
        return compute(targets)


@contextlib.contextmanager
def session(
    config: ExecutorConfig, progress: TextIO | None = None
) -> Iterator[Callable[[Sequence[Any]], list[Any]]]:
    """An open executor (one cluster or connection) yielding ``compute(targets) -> results``.

    A run that computes in several phases shares one cluster instead of starting one per phase.
    A target is a Dask collection, a plain value, or a list of them (a sink's tasks); progress
    counts the collections (files, Zarr chunks, artefacts) as they finish.
    """
    if config.type == "threads":
        yield lambda targets: _grouped(targets, _run_threads(_flat(targets), progress))
        return
    with _client(config) as client:
        yield lambda targets: _grouped(targets, _run_distributed(client, _flat(targets), progress))


def _flat(targets: Sequence[Any]) -> list[Any]:
    return [t for target in targets for t in (target if isinstance(target, list) else [target])]


def _grouped(targets: Sequence[Any], results: list[Any]) -> list[Any]:
    """``results`` of the flattened targets, regrouped like ``targets``."""
    grouped, position = [], 0
    for target in targets:
        if isinstance(target, list):
            grouped.append(results[position : position + len(target)])
            position += len(target)
        else:
            grouped.append(results[position])
            position += 1
    return grouped


def _run_threads(flat: list[Any], progress: TextIO | None) -> list[Any]:
    import dask

    if not flat:
        return []
    return_freed_memory()
    keys = target_keys(flat)
    reporter: Any = contextlib.nullcontext()
    if progress and keys:
        line = ProgressLine(len(keys), progress)
        line.draw()  # at once: the first output may take minutes
        reporter = threads_callback(keys, line)
    with reporter:
        return list(dask.compute(*flat, scheduler="threads"))


def _run_distributed(client: Any, flat: list[Any], progress: TextIO | None) -> list[Any]:
    """Compute on the cluster, taking each result as soon as it is ready and releasing its future.

    A finished target's result then lives nowhere on the cluster: if a worker dies later, the
    scheduler has nothing of it to recompute (an output chunk already stored stays done).
    """
    from dask.base import is_dask_collection

    positions = [i for i, t in enumerate(flat) if is_dask_collection(t)]
    if not positions:
        return list(flat)
    line = ProgressLine(len(positions), progress) if progress is not None else None
    if line is not None:
        line.draw()
    futures = client.compute([flat[i] for i in positions])
    results = list(flat)
    for i, value in follow_futures(futures, line):
        results[positions[i]] = value
    return results


@contextlib.contextmanager
def _client(config: ExecutorConfig) -> Iterator[Any]:
    """A distributed Client: on a new LocalCluster, or connected to ``config.address``.

    The connection, handshake included, is bounded by ``config.connect_timeout``
    (:func:`~pipelines.runner.scheduler_probe.check_scheduler`).
    """
    from distributed import Client, LocalCluster

    if config.type == "processes":
        workers = config.workers or max(1, min(os.cpu_count() or 1, 4))
        with (
            environment_kept(nanny_environment()),
            LocalCluster(
                n_workers=workers,
                env=worker_thread_env(workers * config.threads_per_worker),
                threads_per_worker=config.threads_per_worker,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,  # task errors reach the client as one-line StepErrors
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    assert config.address is not None  # the schema requires it for this type
    started = time.monotonic()
    try:
        check_scheduler(config.address, config.connect_timeout)
    except SchedulerUnreachable as exc:
        raise ExecutorError(str(exc)) from None
    # What is left of the budget: a scheduler that just answered the handshake answers again.
    left = max(config.connect_timeout - (time.monotonic() - started), 1.0)
    try:
        client = Client(config.address, timeout=left)
    except (OSError, TimeoutError) as exc:
        raise ExecutorError(
            f"cannot reach the Dask scheduler at {config.address} within {config.connect_timeout:g} s "
            f"({' '.join(str(exc).split())}); is `dask scheduler` running there?"
        ) from None
    with client:
        limit_worker_threads(client)
        yield client


def nanny_environment() -> tuple[str, ...]:
    """The variables Dask's nannies set in *this* process's environment before each worker spawn.

    ``distributed.nanny.pre-spawn-environ`` (``MALLOC_TRIM_THRESHOLD_``, ``OMP_NUM_THREADS=1``,
    ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``) and ``PYTHONHASHSEED`` are written into
    ``os.environ`` and never taken back, so every process this one starts later would inherit them.
    """
    import dask
    import distributed  # noqa: F401  (its import registers the nanny's configuration)

    return (*dask.config.get("distributed.nanny.pre-spawn-environ"), "PYTHONHASHSEED")


@contextlib.contextmanager
def environment_kept(names: Sequence[str]) -> Iterator[None]:
    """Put the variables ``names`` back as they were (set or unset) when the block ends."""
    before = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def limit_worker_threads(client: Any) -> None:
    """Give workers without ``OMP_NUM_THREADS`` their share of their host's cores (cores / task slots on it).

    Dask does not cap the threads of native libraries: without this, every worker's torch or
    BLAS would use all of its host's cores at once.
    """
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    slots: dict[str, int] = {}
    for info in workers.values():
        slots[info["host"]] = slots.get(info["host"], 0) + int(info.get("nthreads", 1))
    for address, info in workers.items():
        client.run(set_thread_env, slots[info["host"]], workers=[address], on_error="ignore")


def set_thread_env(tasks_on_host: int) -> None:
    """Set the thread variables of this process to its share of the cores, unless already set."""
    if not os.environ.get("OMP_NUM_THREADS"):
        os.environ.update(worker_thread_env(tasks_on_host))


def worker_thread_env(tasks_at_once: int) -> dict[str, str]:
    """Thread limits for worker processes, so that concurrent tasks share the cores without oversubscribing."""
    threads = str(max(1, (os.cpu_count() or 1) // max(1, tasks_at_once)))
    return {
        name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    }
