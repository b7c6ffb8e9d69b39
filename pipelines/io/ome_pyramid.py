"""OME-Zarr pyramid levels: each level halves y and x of the one before, chunk by chunk.

Level ``k`` is computed once level ``k - 1`` is complete (a follow-up phase of the write), each
task reading the 2 x 2-chunk region of level ``k - 1`` under one chunk of level ``k``, so memory
stays bounded by a chunk. Every level has its completion record, so a killed job resumes each
level where it stopped. Used by :mod:`pipelines.io.ome_sink`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipelines.io.zarr_store import OutputSpec, read_record, store_block
from pipelines.runner.outputs import FollowUp
from pipelines.runner.tasks import task


def chunk_count(levels: Sequence[OutputSpec]) -> int:
    """Chunks of every level together."""
    return sum(math.prod(spec.grid) for spec in levels)


def pyramid_done(levels: Sequence[OutputSpec]) -> int:
    """Chunks of the pyramid levels (1, 2, ...) already stored."""
    return sum(int(read_record(spec.path, spec.grid).sum()) for spec in levels[1:])


def pyramid_complete(levels: Sequence[OutputSpec]) -> bool:
    """Whether every pyramid level is complete."""
    return pyramid_done(levels) == chunk_count(levels[1:])


def pyramid_tasks(
    levels: Sequence[OutputSpec],
    method: str,
    label: str,
    finish: Callable[[], list[Any]],
    level: int,
) -> list[Any]:
    """Store tasks for the unfinished chunks of ``level`` (from level - 1), then the next level's
    follow-up; after the last level, what ``finish()`` returns (the image's publishing)."""
    if level >= len(levels):
        return finish()
    spec, source = levels[level], levels[level - 1]
    done = read_record(spec.path, spec.grid)
    tasks: list[Any] = []
    for index in np.ndindex(*spec.grid):
        if done[index]:
            continue
        region = tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(index, spec.chunks, spec.shape, strict=True)
        )
        cells = tuple(slice(i, i + 1) for i in index)
        tasks.append(
            task(
                store_downsampled,
                source.path,
                spec.path,
                region,
                cells,
                method,
                name=f"level{level}",
            )
        )
    following = f"{label} level {level + 1}" if level + 1 < len(levels) else f"{label} publish"
    plan = functools.partial(pyramid_tasks, levels, method, label, finish, level + 1)
    tasks.append(FollowUp(following, plan))
    return tasks


def store_downsampled(
    source: str, target: str, region: tuple[slice, ...], cells: tuple[slice, ...], method: str
) -> None:
    """Read the 2x region of ``source`` under one chunk of ``target``, downsample it, store it."""
    import zarr

    array = zarr.open_array(source, mode="r")
    y, x = region[-2:]
    height, width = array.shape[-2:]
    window = (
        *region[:-2],
        slice(2 * y.start, min(2 * y.stop, height)),
        slice(2 * x.start, min(2 * x.stop, width)),
    )
    block = downsample(np.asarray(array[window]), method)
    store_block(block, target, region, cells)


def downsample(block: np.ndarray, method: str) -> np.ndarray:
    """Halve the last two axes: ``nearest`` keeps every other pixel, ``mean`` averages 2 x 2 blocks.

    At an odd edge the mean covers the pixels there are. Sums are float32 (exact for 16-bit
    samples) and built from the four quarter grids, so a task holds about twice its block.
    """
    if method == "nearest":
        return np.ascontiguousarray(block[..., ::2, ::2])
    h, w = block.shape[-2:]
    rows, cols = -(-h // 2), -(-w // 2)
    wide = np.issubdtype(block.dtype, np.floating) and block.dtype.itemsize > 4
    kind = np.float64 if wide or block.dtype.itemsize > 2 else np.float32
    total = np.zeros((*block.shape[:-2], rows, cols), dtype=kind)
    count = np.zeros((rows, cols), dtype=kind)
    for dy in (0, 1):
        for dx in (0, 1):
            part = block[..., dy::2, dx::2]
            total[..., : part.shape[-2], : part.shape[-1]] += part
            count[: part.shape[-2], : part.shape[-1]] += 1
    total /= count
    if np.issubdtype(block.dtype, np.integer):
        info = np.iinfo(block.dtype)
        return np.clip(np.rint(total), info.min, info.max).astype(block.dtype)
    return total.astype(block.dtype)
