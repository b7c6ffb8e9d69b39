"""The training package's hook implementations, found through the ``pipelines`` entry point."""

from __future__ import annotations

from pipelines.api import StageSpec, hookimpl
from training.stage import stage_specs


@hookimpl
def register_stages() -> list[StageSpec]:
    """Register ``esrgan.train``."""
    return stage_specs()
