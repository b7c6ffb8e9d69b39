"""The public plugin contract: everything a plugin or a foreign host needs, from one module.

A plugin implements hooks with :data:`hookimpl` and returns :class:`StageSpec` objects whose
parameters are a :class:`StageParams` model. A foreign host (one that does not use this
package's runner) finds plugins through the ``pipelines`` entry-point group, asks them for their
stages, and applies a transform stage to an image with :func:`map_stage`: on a NumPy array it
calls the stage once; on a Dask array it maps it block by block with the stage's halo, scale and
block multiple handled exactly as the runner does, so the result equals the whole-image call.

It also holds what a plugin's own command line and library code need from the host, so that no
plugin reaches into the host's modules: image reading and writing (with the ICC profile, EXIF
and a provenance record: :class:`ImageMetadata`, :func:`make_provenance`,
:func:`read_provenance`), atomic writes, output locks,
interrupt handling, one-line errors, command-line options generated from a parameter model,
the line-numbered YAML loader, MATLAB-compatible ``imresize`` and running Dask graphs.

Video (:mod:`pipelines.io.video`): :func:`probe_video` (a :class:`VideoInfo`), :func:`read_frames`
(a frame range as a (T, H, W, C) array), :func:`write_video` with :class:`EncodeSettings`,
:func:`video_item` (a video as a lazy pipeline item), and :func:`transform_video`, the resumable
segment job that runs a per-frame function over a whole video on any executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.config.arguments import (
    OneLineErrorParser,
    add_model_arguments,
    describe_error,
    given_values,
)
from pipelines.config.yaml_loader import Locations, YamlError, load_yaml
from pipelines.errors import ImageIOError, PipelineError, first_line, suggest
from pipelines.hooks.manager import build_registry, get_plugin_manager
from pipelines.hooks.markers import PROJECT_NAME, hookimpl, hookspec
from pipelines.imresize import imresize
from pipelines.interrupts import exit_code, interrupts_as_exceptions, signal_name
from pipelines.io.atomic import atomic_target
from pipelines.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    QUALITY_RANGE,
    ImageMetadata,
    expand_inputs,
    is_still_image,
    make_provenance,
    read_image,
    read_image_with_meta,
    read_metadata,
    read_provenance,
    write_image,
)
from pipelines.io.items import ImageItem, ImageMeta, channels_of
from pipelines.io.locks import OutputLockedError, output_lock
from pipelines.runner.blocks import BlockPlan, block_plan, map_array
from pipelines.runner.outputs import Artefact, FollowUp, OutputStatus
from pipelines.runner.registry import Kind, StageParams, StageRegistry, StageSpec
from pipelines.runner.tasks import StepError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "PROJECT_NAME",
    "QUALITY_RANGE",
    "VIDEO_SUFFIXES",
    "Artefact",
    "BlockPlan",
    "EncodeSettings",
    "ExecutorConfig",
    "FollowUp",
    "FrameIndex",
    "ImageIOError",
    "ImageItem",
    "ImageMeta",
    "ImageMetadata",
    "Kind",
    "Locations",
    "OneLineErrorParser",
    "OutputLockedError",
    "OutputStatus",
    "PipelineError",
    "StageParams",
    "StageRegistry",
    "StageSpec",
    "StepError",
    "VideoError",
    "VideoInfo",
    "VideoItem",
    "VideoResult",
    "YamlError",
    "add_model_arguments",
    "atomic_target",
    "block_plan",
    "build_registry",
    "channels_of",
    "describe_error",
    "execute",
    "exit_code",
    "expand_inputs",
    "first_line",
    "get_plugin_manager",
    "given_values",
    "hookimpl",
    "hookspec",
    "imresize",
    "index_frames",
    "interrupts_as_exceptions",
    "is_still_image",
    "is_video",
    "iter_frames",
    "load_yaml",
    "make_provenance",
    "map_stage",
    "output_lock",
    "probe_video",
    "read_frames",
    "read_image",
    "read_image_with_meta",
    "read_metadata",
    "read_provenance",
    "sequence_item",
    "signal_name",
    "stage_params",
    "suggest",
    "transform_video",
    "video_item",
    "write_image",
    "write_video",
]

if TYPE_CHECKING:  # the lazily imported names below, for type checkers and linters
    from pipelines.config.schema import ExecutorConfig
    from pipelines.io.video.decode import iter_frames, read_frames
    from pipelines.io.video.encode import write_video
    from pipelines.io.video.errors import VideoError
    from pipelines.io.video.index import FrameIndex, index_frames
    from pipelines.io.video.lazy import VideoItem, video_item
    from pipelines.io.video.probe import VIDEO_SUFFIXES, VideoInfo, is_video, probe_video
    from pipelines.io.video.sequence import sequence_item
    from pipelines.io.video.settings import EncodeSettings
    from pipelines.io.video.transform import VideoResult, transform_video
    from pipelines.runner.executors import execute

_LAZY = {  # imported on first use: the executors module loads Dask's machinery
    "ExecutorConfig": "pipelines.config.schema",
    "execute": "pipelines.runner.executors",
    # video (pipelines.io.video; PyAV is imported only when a function runs)
    "VIDEO_SUFFIXES": "pipelines.io.video.probe",
    "VideoError": "pipelines.io.video.errors",
    "VideoInfo": "pipelines.io.video.probe",
    "probe_video": "pipelines.io.video.probe",
    "is_video": "pipelines.io.video.probe",
    "FrameIndex": "pipelines.io.video.index",
    "index_frames": "pipelines.io.video.index",
    "read_frames": "pipelines.io.video.decode",
    "iter_frames": "pipelines.io.video.decode",
    "EncodeSettings": "pipelines.io.video.settings",
    "write_video": "pipelines.io.video.encode",
    "transform_video": "pipelines.io.video.transform",
    "VideoResult": "pipelines.io.video.transform",
    "VideoItem": "pipelines.io.video.lazy",
    "video_item": "pipelines.io.video.lazy",
    "sequence_item": "pipelines.io.video.sequence",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelines.api' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
        raise PipelineError(f"stage {spec.id}: {describe_error(exc)}") from None


def map_stage(
    image: Any, spec: StageSpec, params: StageParams | Mapping[str, Any] | None = None
) -> Any:
    """Apply the transform stage ``spec`` to an (H, W[, C]) NumPy or Dask array, or frame by frame to a (T, H, W, C) video.

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
    if isinstance(image, np.ndarray) and image.ndim == 4:  # a (T, H, W, C) video: frame by frame
        return np.stack([np.asarray(spec.fn(frame, checked)) for frame in image])
    if isinstance(image, np.ndarray):
        return np.asarray(spec.fn(image, checked))
    if not hasattr(image, "chunks") or not hasattr(image, "map_blocks"):
        raise PipelineError(
            f"stage {spec.id}: expected a NumPy or Dask array, got {type(image).__name__}"
        )
    checked = spec.pinned(checked)  # every block runs the same resolved parameters
    return map_array(image, spec.id, spec.id, spec.fn, checked, block_plan(spec, checked))
