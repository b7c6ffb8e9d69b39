"""Dask tasks that know which step they belong to, so a failure names the step that failed.

While the runner builds a step it marks the step as current; :func:`task` (for plugin authors
writing sources, sinks and artefact stages) then wraps the function so that any exception
becomes a one-line :class:`StepError`, and names the task's key after the step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from pipelines.errors import PipelineError

_CURRENT_STEP: ContextVar[tuple[str, str] | None] = ContextVar(
    "pipelines_current_step", default=None
)
_CURRENT_PIPELINE: ContextVar[tuple[str, str] | None] = ContextVar(
    "pipelines_current_pipeline", default=None
)


class StepError(PipelineError):
    """A step's function raised; the message names the step, its stage and the original error."""

    def __init__(self, message: str, step_id: str = "", stage_id: str = "") -> None:
        super().__init__(message)
        self.step_id = step_id
        self.stage_id = stage_id

    @classmethod
    def wrap(cls, step_id: str, stage_id: str, exc: BaseException) -> StepError:
        text = " ".join(str(exc).split()) or "(no message)"
        return cls(
            f"step {step_id!r} ({stage_id}): {type(exc).__name__}: {text}", step_id, stage_id
        )


@contextlib.contextmanager
def building(step_id: str, stage_id: str) -> Iterator[None]:
    """Mark ``step_id`` as the step whose tasks are being created (runner use)."""
    token = _CURRENT_STEP.set((step_id, stage_id))
    try:
        yield
    finally:
        _CURRENT_STEP.reset(token)


def current_step() -> tuple[str, str] | None:
    """(step id, stage id) of the step being built, or None outside the runner."""
    return _CURRENT_STEP.get()


@contextlib.contextmanager
def building_pipeline(name: str, file: str) -> Iterator[None]:
    """Mark the pipeline (name, file) whose graph is being built (runner use)."""
    token = _CURRENT_PIPELINE.set((name, file))
    try:
        yield
    finally:
        _CURRENT_PIPELINE.reset(token)


def current_pipeline() -> tuple[str, str] | None:
    """(name, file) of the pipeline being built, or None outside the runner.

    Sinks read it while they plan their writes, to record which pipeline made an output.
    """
    return _CURRENT_PIPELINE.get()


def run_attributed(
    step_id: str, stage_id: str, func: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """Call ``func``; turn any exception into a :class:`StepError` naming the step."""
    try:
        return func(*args, **kwargs)
    except StepError:
        raise
    except Exception as exc:
        raise StepError.wrap(step_id, stage_id, exc) from exc


def task(func: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any) -> Any:
    """A ``dask.delayed`` call of ``func(*args, **kwargs)``, attributed to the current step.

    Dask collections among the arguments are computed first, as with ``dask.delayed``.
    """
    import dask
    from dask.base import tokenize

    current = _CURRENT_STEP.get()
    if current is None:
        return dask.delayed(func, pure=True)(*args, **kwargs)
    step_id, stage_id = current
    key = f"{step_id}-{name or getattr(func, '__name__', 'task')}-{tokenize(func, args, kwargs)}"
    return dask.delayed(run_attributed, pure=True)(
        step_id, stage_id, func, *args, dask_key_name=key, **kwargs
    )
