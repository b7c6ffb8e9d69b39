"""Applying a transform stage's NumPy function to a lazy image, block by block, with a halo.

A stage declares the context it needs (``halo`` input pixels), its size factor (``scale``) and
the multiple its block starts must fall on (``multiple``, e.g. a network's pixel-unshuffle
factor). The image is rechunked so that every block boundary is such a multiple and every block
is at least the halo (``overlap()`` would otherwise silently merge a small last block itself,
shifting the output blocks), padded with ``dask.array.overlap(boundary='none')`` so edge blocks
see the image's own edge, mapped with output chunks multiplied by the scale, and each result is
trimmed by ``halo * scale`` inside its own task. ``map_overlap`` is not used: it cannot change
the block size. When the scale is unknown before running, or a block's output size would not be
a whole number of pixels, the image is processed as one block instead.

A (T, H, W, C) video is mapped frame by frame: each chunk along T holds whole frames (spatial
chunks are merged), the stage is called once per frame, and the scale applies to H and W only.
Halos and block multiples do not arise, since a frame is never split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.io.items import ImageItem, channels_of
from pipelines.runner.tasks import StepError

if TYPE_CHECKING:
    from pipelines.runner.registry import StageParams, StageSpec

Chunks = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class BlockPlan:
    """How a transform will be mapped: its context (halo), size factor and block multiple, when known."""

    halo: int | None
    scale: float | None
    multiple: int = 1


def block_plan(spec: StageSpec, params: StageParams) -> BlockPlan:
    """How ``spec`` tiles for ``params``: halo (input pixels), scale and block multiple."""
    return BlockPlan(
        halo=spec.halo_for(params), scale=spec.scale_for(params), multiple=spec.multiple_for(params)
    )


def map_image(
    item: ImageItem,
    step_id: str,
    stage_id: str,
    fn: Callable[..., Any],
    params: Any,
    plan: BlockPlan,
    record: Mapping[str, Any] | None = None,
) -> ImageItem:
    """``fn`` mapped over ``item`` block by block with the plan's halo; whole-image when it cannot tile."""
    return item.with_data(map_array(item.data, step_id, stage_id, fn, params, plan), record)


def map_array(
    data: Any,
    step_id: str,
    stage_id: str,
    fn: Callable[..., Any],
    params: Any,
    plan: BlockPlan,
) -> Any:
    """``fn`` mapped over the Dask array ``data`` (H, W[, C]) block by block with the plan's halo.

    A 4-D ``data`` is a (T, H, W, C) video: see :func:`map_frames`.
    """
    import dask.array as da

    if data.ndim == 4:
        return map_frames(data, step_id, stage_id, fn, params, plan)
    chunks = tiled_chunks(data.chunks, plan)
    if chunks is None:
        return map_whole_array(data, step_id, stage_id, fn, params, plan)
    assert plan.halo is not None and plan.scale is not None
    halo = round_up(plan.halo, plan.multiple)
    data = data.rechunk(chunks)
    counts = (len(chunks[0]), len(chunks[1]))
    depth = {0: halo if counts[0] > 1 else 0, 1: halo if counts[1] > 1 else 0}
    depth.update({axis: 0 for axis in range(2, data.ndim)})
    padded = (
        da.overlap.overlap(data, depth=depth, boundary="none", allow_rechunk=False)
        if halo
        else data
    )
    trim = int(halo * plan.scale)
    out_chunks = tuple(tuple(int(c * plan.scale) for c in axis) for axis in chunks[:2]) + chunks[2:]
    return da.map_blocks(
        run_trimmed,
        padded,
        step_id,
        stage_id,
        fn,
        params,
        plan.scale,
        trim,
        counts,
        chunks=out_chunks,
        dtype=data.dtype,
        meta=_meta(data),
        token=step_id,
    )


def map_frames(
    data: Any,
    step_id: str,
    stage_id: str,
    fn: Callable[..., Any],
    params: Any,
    plan: BlockPlan,
) -> Any:
    """``fn`` applied to every frame of a (T, H, W, C) array, one task per chunk of whole frames along T."""
    import dask.array as da

    data = data.rechunk((data.chunks[0], -1, -1, -1))
    height, width = (_scaled(n, plan.scale) for n in data.shape[1:3])
    chunks = (data.chunks[0], (height,), (width,), data.chunks[3])
    return da.map_blocks(
        run_frames,
        data,
        step_id,
        stage_id,
        fn,
        params,
        plan.scale,
        chunks=chunks,
        dtype=data.dtype,
        meta=_meta(data),
        token=step_id,
    )


def run_frames(
    block: np.ndarray,
    step_id: str,
    stage_id: str,
    fn: Callable[..., Any],
    params: Any,
    scale: float | None,
) -> np.ndarray:
    """Call a transform on each (H, W, C) frame of a (t, H, W, C) block; every result the same size."""
    outs = [run_block(frame, step_id, stage_id, fn, params) for frame in block]
    if not outs:
        return block
    sizes = {out.shape for out in outs}
    expected = (
        tuple(int(n * scale) for n in block.shape[1:3]) if scale is not None else outs[0].shape[:2]
    )
    if len(sizes) > 1 or outs[0].shape[:2] != expected:
        raise StepError(
            f"step {step_id!r} ({stage_id}): returned frames of {sorted(s[:2] for s in sizes)} for "
            f"{block.shape[1]}x{block.shape[2]} frames; expected every frame {expected[0]}x{expected[1]}",
            step_id,
            stage_id,
        )
    return np.stack(outs)


def map_whole_array(
    data: Any,
    step_id: str,
    stage_id: str,
    fn: Callable[..., Any],
    params: Any,
    plan: BlockPlan,
) -> Any:
    """``fn`` applied to the whole array as one block; output size predicted from ``plan.scale``."""
    import dask.array as da

    data = data.rechunk(tuple(-1 for _ in range(data.ndim)))
    chunks = tuple((_scaled(n, plan.scale),) for n in data.shape[:2]) + tuple(
        (c,) for c in data.shape[2:]
    )
    return da.map_blocks(
        run_block,
        data,
        step_id,
        stage_id,
        fn,
        params,
        chunks=chunks,
        dtype=data.dtype,
        meta=_meta(data),
        token=step_id,
    )


def tiled_chunks(chunks: Chunks, plan: BlockPlan) -> Chunks | None:
    """The chunks to tile with (rows and columns aligned, channels whole), or None for one block."""
    if (
        plan.halo is None
        or plan.scale is None
        or any(math.isnan(c) for axis in chunks for c in axis)
    ):
        return None
    halo = round_up(plan.halo, plan.multiple)
    spatial = tuple(aligned_axis(axis, halo, plan.multiple) for axis in chunks[:2])
    sizes = [c * plan.scale for axis in spatial for c in axis] + [halo * plan.scale]
    if not all(float(v).is_integer() for v in sizes):
        return None
    return spatial + tuple((sum(axis),) for axis in chunks[2:])


def aligned_axis(chunks: tuple[int, ...], halo: int, multiple: int = 1) -> tuple[int, ...]:
    """``chunks`` if every interior boundary is a multiple and every block >= halo; else a regular grid that is.

    The regular grid keeps the first block's size (rounded up to the multiple, at least the
    halo); a last block smaller than the halo is merged into the one before it.
    """
    if len(chunks) == 1:
        return chunks
    boundaries = np.cumsum(chunks[:-1])
    if min(chunks) >= halo and not np.any(boundaries % multiple):
        return tuple(int(c) for c in chunks)
    length = int(sum(chunks))
    size = round_up(max(int(chunks[0]), halo, 1), multiple)
    out = [size] * (length // size)
    rest = length - size * len(out)
    if rest and (rest >= halo or not out):
        out.append(rest)
    elif rest:
        out[-1] += rest
    return tuple(out)


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def run_trimmed(
    block: np.ndarray,
    step_id: str,
    stage_id: str,
    fn: Callable[..., Any],
    params: Any,
    scale: float,
    trim: int,
    counts: tuple[int, int],
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Call a transform on a padded block and crop ``trim`` output pixels from each interior side."""
    out = run_block(block, step_id, stage_id, fn, params)
    expected = tuple(int(n * scale) for n in block.shape[:2])
    if out.shape[:2] != expected:
        raise StepError(
            f"step {step_id!r} ({stage_id}): returned a {out.shape[0]}x{out.shape[1]} block for a "
            f"{block.shape[0]}x{block.shape[1]} input at scale {scale:g}; expected {expected[0]}x{expected[1]} "
            "(the stage's declared scale does not match what it does)",
            step_id,
            stage_id,
        )
    assert block_id is not None
    crops = []
    for axis in (0, 1):
        first, last = block_id[axis] == 0, block_id[axis] == counts[axis] - 1
        start = 0 if first else trim
        stop = out.shape[axis] - (0 if last else trim)
        crops.append(slice(start, stop))
    return np.ascontiguousarray(out[tuple(crops)])


def run_block(
    block: np.ndarray, step_id: str, stage_id: str, fn: Callable[..., Any], params: Any
) -> np.ndarray:
    """Call a transform on one block; errors name the step, and dtype/channels must be kept."""
    try:
        out = np.asarray(fn(block, params))
    except StepError:
        raise
    except Exception as exc:
        raise StepError.wrap(step_id, stage_id, exc) from exc
    if (
        out.dtype != block.dtype
        or out.ndim != block.ndim
        or channels_of(out.shape) != channels_of(block.shape)
    ):
        raise StepError(
            f"step {step_id!r} ({stage_id}): returned {out.dtype} {out.shape} for a {block.dtype} {block.shape} "
            "block; transforms must keep dtype and channels",
            step_id,
            stage_id,
        )
    return out


def _meta(data: Any) -> np.ndarray:
    """An empty array of the block type, so that Dask never calls the stage to guess it."""
    return np.empty((0,) * data.ndim, dtype=data.dtype)


def _scaled(length: float, scale: float | None) -> float:
    """Output length for an integral result, else NaN (known only once the block has run)."""
    if scale is None or math.isnan(length):
        return math.nan
    value = length * scale
    return int(value) if float(value).is_integer() else math.nan
