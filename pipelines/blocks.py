"""Applying a transform stage's NumPy function to a lazy image, block by block.

For now every image is one block (whole-image chunks). The stage's ``halo`` and ``scale`` are
resolved here so that chunked overlap tiling (``dask.array.overlap`` + ``map_blocks`` with
output chunks scaled by ``scale``, then trimming ``scale * halo``) can replace the single block
without changing any stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.images import ImageItem, channels_of
from pipelines.tasks import StepError


@dataclass(frozen=True)
class BlockPlan:
    """How a transform will be mapped: its context (halo) and size factor, when known."""

    halo: int | None
    scale: float | None


def run_block(block: np.ndarray, step_id: str, stage_id: str, fn: Callable[..., Any], params: Any) -> np.ndarray:
    """Call a transform on one block; errors name the step, and dtype/channels must be kept."""
    try:
        out = np.asarray(fn(block, params))
    except StepError:
        raise
    except Exception as exc:
        raise StepError.wrap(step_id, stage_id, exc) from exc
    if out.dtype != block.dtype or out.ndim != block.ndim or channels_of(out.shape) != channels_of(block.shape):
        raise StepError(
            f"step {step_id!r} ({stage_id}): returned {out.dtype} {out.shape} for a {block.dtype} {block.shape} "
            "block; transforms must keep dtype and channels",
            step_id,
            stage_id,
        )
    return out


def map_whole_image(
    item: ImageItem, step_id: str, stage_id: str, fn: Callable[..., Any], params: Any, plan: BlockPlan
) -> ImageItem:
    """``fn`` applied to the whole image as one block; output size predicted from ``plan.scale``."""
    import dask.array as da

    data = item.data
    data = data.rechunk(tuple(-1 for _ in range(data.ndim)))
    chunks = tuple((_scaled(n, plan.scale),) for n in data.shape[:2]) + tuple((c,) for c in data.shape[2:])
    out = da.map_blocks(
        run_block, data, step_id, stage_id, fn, params, chunks=chunks, dtype=data.dtype, token=step_id
    )
    return item.with_data(out)


def _scaled(length: float, scale: float | None) -> float:
    """Output length for an integral result, else NaN (known only once the block has run)."""
    if scale is None or math.isnan(length):
        return math.nan
    value = length * scale
    return int(value) if float(value).is_integer() else math.nan
