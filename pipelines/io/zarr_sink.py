"""``builtin.write`` to Zarr: one array per image, or one (N, H, W, C) dataset array for a batch.

Output chunks are the computed blocks (blocks are realigned to an existing array's chunks
when resuming), and each block is stored by exactly one task, so no two tasks ever write the
same chunk. An array already at the target made by the same job (same inputs, stages and
parameters) is resumed: blocks whose chunks the completion record marks as finished are not
computed again. Everything is decided while planning, before any task runs.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import string
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from pipelines.errors import ImageIOError
from pipelines.io.items import ImageItem
from pipelines.io.zarr_source import DEFAULT_CHANNEL_NAMES, DTYPES
from pipelines.io.zarr_store import (
    JOB_ATTR,
    RECORD,
    RUN_ATTR,
    Existing,
    Mode,
    OutputSpec,
    inspect_output,
    prepare_output,
    remove_orphans,
    store_block,
)
from pipelines.runner.outputs import OutputStatus
from pipelines.runner.tasks import task


def write_zarr(items: Sequence[ImageItem], path: str, overwrite: bool, restart: bool) -> list[Any]:
    """Store tasks for every unfinished block of every output array named by ``path``."""
    tasks: list[Any] = []
    for target, members in group_outputs(items, path):
        spec = output_spec(target, members)
        existing = inspect_output(target)
        mode = decide(spec, existing, overwrite, restart)
        if mode == "resume":
            assert existing is not None
            spec = replace(
                spec, chunks=existing.chunks
            )  # its chunks, which the record's grid follows
            done = existing.done
            remove_orphans(target)  # before any task of this run could be writing there
        else:
            done = np.zeros(spec.grid, dtype=bool)
        status = OutputStatus(target, int(done.size), int(done.sum()))
        tasks.append(status)
        if not status.complete:
            tasks.extend(block_tasks(spec, members, mode, done))
    return tasks


def group_outputs(items: Sequence[ImageItem], pattern: str) -> list[tuple[str, list[ImageItem]]]:
    """(array path, images) pairs: one per image if the path has placeholders, else all images in one."""
    fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f]
    if not fields:
        return [(pattern, list(items))]
    planned: dict[str, ImageItem] = {}
    for item in items:
        m = item.meta
        target = pattern.format(name=m.name, index=m.index, parent=m.parent, ext="zarr")
        if target in planned:
            raise ImageIOError(
                f"{target}: both {planned[target].meta.source or planned[target].meta.name} and "
                f"{m.source or m.name} would be written here; put {{index}} in the path pattern"
            )
        planned[target] = item
    return [(target, [item]) for target, item in planned.items()]


def output_spec(path: str, items: Sequence[ImageItem]) -> OutputSpec:
    """The array that holds ``items``: checked for known, equal shapes and a storable dtype."""
    first = items[0]
    for item in items:
        if any(math.isnan(n) for n in item.data.shape):
            raise ImageIOError(
                f"{path}: the size of {item.meta.name} is known only once it is computed (a resize by width/height, "
                "or a model made during the run); Zarr output needs it beforehand"
            )
        if item.data.shape != first.data.shape or item.data.dtype != first.data.dtype:
            raise ImageIOError(
                f"{path}: {item.meta.name} is {item.data.dtype} {item.data.shape} but {first.meta.name} is "
                f"{first.data.dtype} {first.data.shape}; a Zarr dataset needs equal images (or put {{index}} in the path)"
            )
    dtype = str(first.data.dtype)
    if dtype not in DTYPES:
        raise ImageIOError(
            f"{path}: cannot store samples of type {dtype}; expected one of {', '.join(DTYPES)}"
        )
    shape = tuple(int(n) for n in first.data.shape)
    chunks = tuple(int(axis[0]) for axis in first.data.chunks[:2]) + shape[2:]
    names = ("y", "x", "c")[: len(shape)]
    if len(items) > 1:
        shape, chunks, names = (len(items), *shape), (1, *chunks), ("n", *names)
    return OutputSpec(path, shape, dtype, chunks, names, attributes(items, shape, dtype))


def attributes(items: Sequence[ImageItem], shape: tuple[int, ...], dtype: str) -> dict[str, Any]:
    """Zarr attributes: bit depth, channel names, source(s), overall scale, every step applied, the job."""
    meta = items[0].meta
    steps = [dict(r) for r in meta.history]
    scales = [r.get("scale") for r in steps]
    numbers = [float(s) for s in scales if isinstance(s, (int, float))]
    scale = math.prod(numbers) if len(numbers) == len(scales) else None
    sources = [i.meta.source or i.meta.name for i in items]
    job = {
        "shape": list(shape),
        "dtype": dtype,
        "images": [
            [s, [dict(r) for r in i.meta.history]] for s, i in zip(sources, items, strict=True)
        ],
    }
    attrs: dict[str, Any] = {
        "bit_depth": meta.bit_depth,
        "channel_names": list(meta.channel_names or DEFAULT_CHANNEL_NAMES[meta.channels]),
        "source": sources[0] if len(items) == 1 else sources,
        "scale": scale,
        "steps": steps,
        "completion_record": RECORD,
        "version": package_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        RUN_ATTR: uuid.uuid4().hex,
        JOB_ATTR: hashlib.sha256(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()[
            :20
        ],
    }
    if len(items) > 1:
        attrs["images"] = [i.meta.name for i in items]
    return attrs


def package_version() -> str:
    """This project's version (recorded in outputs, outside the job fingerprint)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("esrgan-pipelines")
    except PackageNotFoundError:
        return "unknown"


def decide(spec: OutputSpec, existing: Existing | None, overwrite: bool, restart: bool) -> Mode:
    """create, replace or resume; refuses an output of another job (or not made by a pipeline) unless overwrite."""
    if existing is None:
        return "create"
    same_job = existing.job == spec.attributes[JOB_ATTR]
    if not same_job and not overwrite:
        made_by = (
            "another job (other inputs, stages or parameters)"
            if existing.job
            else "something other than a pipeline"
        )
        raise ImageIOError(
            f"{spec.path}: output exists, made by {made_by}; set overwrite: true to replace it"
        )
    if not same_job or restart:
        return "replace"
    if existing.shape != spec.shape or existing.dtype != spec.dtype:
        raise ImageIOError(
            f"{spec.path}: existing output is {existing.dtype} {existing.shape}, this job writes {spec.dtype} {spec.shape}; "
            "set restart: true to start over"
        )
    return "resume"


def block_tasks(
    spec: OutputSpec, items: Sequence[ImageItem], mode: Mode, done: np.ndarray
) -> list[Any]:
    """One store task per block with an unfinished chunk; the path itself when nothing is left to do."""
    prepared = task(prepare_output, spec, mode, name="prepare")
    stacked = len(spec.shape) == len(items[0].data.shape) + 1
    tasks = []
    for n, item in enumerate(items):
        data = align(item.data, spec.chunks[1:] if stacked else spec.chunks)
        blocks = data.to_delayed(optimize_graph=True)
        for index in np.ndindex(*blocks.shape):
            region = tuple(_span(data.chunks[axis], i) for axis, i in enumerate(index))
            cells = tuple(
                slice(r.start // c, -(-r.stop // c))
                for r, c in zip(region, spec.chunks[stacked:], strict=True)
            )
            if stacked:
                region, cells = (slice(n, n + 1), *region), (slice(n, n + 1), *cells)
            if done[cells].all():
                continue
            tasks.append(task(store_block, blocks[index], prepared, region, cells, name="chunk"))
    return tasks or [spec.path]


def align(data: Any, chunks: tuple[int, ...]) -> Any:
    """``data`` with every block boundary on a chunk boundary (rechunked to the chunk grid if not)."""
    aligned = all(
        all(b % c == 0 for b in np.cumsum(axis[:-1]))
        for axis, c in zip(data.chunks, chunks, strict=True)
    )
    return data if aligned else data.rechunk(chunks)


def _span(chunks: tuple[int, ...], index: int) -> slice:
    start = int(sum(chunks[:index]))
    return slice(start, start + int(chunks[index]))
