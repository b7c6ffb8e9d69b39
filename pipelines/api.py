"""The public plugin contract: everything a plugin or a foreign host needs, from one module.

A plugin implements hooks with :data:`hookimpl` and returns :class:`StageSpec` objects whose
parameters are a :class:`StageParams` model. A foreign host (one that does not use this
package's runner) finds plugins through the ``pipelines`` entry-point group, asks them for their
stages, and applies a transform stage to an image with :func:`map_stage`: on a NumPy array it
calls the stage once; on a Dask array it maps it block by block with the stage's halo, scale and
block multiple handled exactly as the runner does, so the result equals the whole-image call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipelines.errors import ImageIOError, PipelineError
from pipelines.hooks.manager import build_registry, get_plugin_manager
from pipelines.hooks.markers import PROJECT_NAME, hookimpl, hookspec
from pipelines.io.items import ImageItem, ImageMeta, channels_of
from pipelines.runner.blocks import BlockPlan, block_plan, map_array
from pipelines.runner.outputs import FollowUp, OutputStatus
from pipelines.runner.registry import Kind, StageParams, StageRegistry, StageSpec
from pipelines.runner.tasks import StepError

__all__ = [
    "PROJECT_NAME",
    "BlockPlan",
    "FollowUp",
    "ImageIOError",
    "ImageItem",
    "ImageMeta",
    "Kind",
    "OutputStatus",
    "PipelineError",
    "StageParams",
    "StageRegistry",
    "StageSpec",
    "StepError",
    "block_plan",
    "build_registry",
    "channels_of",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "map_stage",
    "stage_params",
]


def stage_params(spec: StageSpec, params: StageParams | Mapping[str, Any] | None = None) -> Any:
    """``params`` validated against the stage's schema (a mapping, an instance, or the defaults)."""
    if isinstance(params, spec.params):
        return params
    if isinstance(params, StageParams):
        raise PipelineError(
            f"stage {spec.id}: parameters are a {type(params).__name__}, expected {spec.params.__name__}"
        )
    import pydantic

    try:
        return spec.params.model_validate(dict(params or {}))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "parameters"
        raise PipelineError(f"stage {spec.id}: {where}: {first['msg']}") from None


def map_stage(
    image: Any, spec: StageSpec, params: StageParams | Mapping[str, Any] | None = None
) -> Any:
    """Apply the transform stage ``spec`` to an (H, W[, C]) NumPy or Dask array.

    NumPy in, NumPy out (one call). Dask in, lazy Dask out: blocks are aligned to the stage's
    ``multiple``, padded with its ``halo`` (edge blocks see the image edge, as the whole image
    does), mapped with output chunks times its ``scale`` and trimmed inside each task.
    """
    if spec.consumes != "images" or spec.produces != "images":
        raise PipelineError(
            f"stage {spec.id} consumes {spec.consumes} and produces {spec.produces}; "
            "map_stage applies image -> image transforms only"
        )
    checked = stage_params(spec, params)
    if isinstance(image, np.ndarray):
        return np.asarray(spec.fn(image, checked))
    if not hasattr(image, "chunks") or not hasattr(image, "map_blocks"):
        raise PipelineError(
            f"stage {spec.id}: expected a NumPy or Dask array, got {type(image).__name__}"
        )
    return map_array(image, spec.id, spec.id, spec.fn, checked, block_plan(spec, checked))
