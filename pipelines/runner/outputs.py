"""What a sink returns besides its write tasks: where each output stands, and work planned later.

A sink's list may hold, besides Dask tasks, an :class:`OutputStatus` per output (how many of
its chunks were already done before this run, so the runner can say "resuming: K of N chunks
already done" and "already complete") and :class:`FollowUp` entries: work that can only be
planned once the sink's earlier tasks have finished (a pyramid computed from a written level).
An artefact stage may return an :class:`Artefact` to name the files it wrote.
The runner computes the tasks, then calls each follow-up's ``plan`` and computes what it returns,
until none is left; results of follow-ups join the step's results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.wording import counted


@dataclass(frozen=True)
class OutputStatus:
    """One output of a sink: its path, its chunks in all, and those already done before this run.

    ``published``: whether the output is already visible at ``path`` (a Zarr output is written
    under a work path and published when complete); one whose chunks are all done but that is not
    published yet still has its publishing to do.
    """

    path: str
    total: int
    done: int
    published: bool = True

    @property
    def complete(self) -> bool:
        return self.done >= self.total and self.published

    def describe(self) -> str:
        """``out.zarr: resuming: 3 of 16 chunks already done, 13 to do`` and the like."""
        chunks = counted(self.total, "chunk")
        if self.complete:
            return f"{self.path}: already complete ({self.total} of {chunks}); nothing to do"
        if self.done >= self.total:
            return (
                f"{self.path}: every chunk already done ({self.total} of {chunks}); publishing it"
            )
        if self.done:
            return (
                f"{self.path}: resuming: {self.done} of {chunks} already done, "
                f"{self.total - self.done} to do"
            )
        return f"{self.path}: {chunks} to do"


@dataclass(frozen=True)
class Artefact:
    """What an artefact stage may return instead of a plain string: the value later steps
    reference as ``${steps.<id>.output}``, and the files the stage wrote (a report's several
    files), which the run's summary counts and lists with the sinks' files."""

    value: str
    files: tuple[str, ...] = ()


def artefact_value(produced: Any) -> Any:
    """The value of what an artefact stage returned (an :class:`Artefact`'s ``value``)."""
    return produced.value if isinstance(produced, Artefact) else produced


def artefact_files(produced: Any) -> tuple[str, ...]:
    """The files an artefact stage says it wrote (none for a plain value)."""
    return tuple(produced.files) if isinstance(produced, Artefact) else ()


@dataclass(frozen=True)
class FollowUp:
    """Work of a sink planned only after its earlier tasks ran: ``plan()`` returns more entries."""

    name: str
    plan: Callable[[], list[Any]]
