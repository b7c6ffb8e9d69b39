"""What a run did: per-step outputs and the whole run's timing, for hooks and the CLI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepOutput:
    """One step's result: images produced, files written (by a sink, or by an artefact stage
    that returned an :class:`~pipelines.runner.outputs.Artefact`), or its artefact value.

    ``complete`` lists outputs that were already complete before the run (nothing was written).
    """

    step: str
    stage: str
    kind: str | None
    images: int = 0
    written: tuple[str, ...] = ()
    artefact: str | None = None
    complete: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSummary:
    """A finished run: the executor used, wall-clock seconds and every step's output."""

    pipeline: str
    executor: str
    seconds: float
    steps: tuple[StepOutput, ...]

    @property
    def written(self) -> tuple[str, ...]:
        """Every file written by a sink or an artefact stage, in step order."""
        return tuple(path for step in self.steps for path in step.written)

    @property
    def complete(self) -> tuple[str, ...]:
        """Outputs that were already complete before the run, in step order."""
        return tuple(path for step in self.steps for path in step.complete)

    @property
    def artefacts(self) -> dict[str, str]:
        """Artefact values by step id."""
        return {s.step: s.artefact for s in self.steps if s.artefact is not None}
