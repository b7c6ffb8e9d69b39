"""The ESRGAN plugin's hook implementations, found through the ``pipelines`` entry point."""

from __future__ import annotations

from esrgan_plugin.stages import stage_specs
from pipelines.api import StageSpec, hookimpl


@hookimpl
def register_stages() -> list[StageSpec]:
    """Register ``esrgan.upscale`` and ``esrgan.interpolate``."""
    return stage_specs()
