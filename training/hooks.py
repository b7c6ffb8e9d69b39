"""The training package's hook implementations, found through the ``pipelines`` entry point."""

from __future__ import annotations

from pipelines.api import StageSpec, hookimpl
from training.evaluation.stage import stage_specs as evaluation_stage_specs
from training.stage import stage_specs


@hookimpl
def register_stages() -> list[StageSpec]:
    """Register ``esrgan.train`` and ``esrgan.sweep``."""
    return [*stage_specs(), *evaluation_stage_specs()]
