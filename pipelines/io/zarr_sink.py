"""``builtin.write`` to Zarr: one array per image, or one (N, H, W, C) dataset array for a batch.

Output chunks are the computed blocks (blocks are realigned to an existing array's chunks
when resuming), and each block is stored by exactly one task, so no two tasks ever write the
same chunk. An array is written under its work path and published (renamed into place) once its
last chunk is stored (:mod:`pipelines.io.zarr_publish`), so the output path holds only finished
arrays. An unfinished array of the same job (same inputs, stages and parameters) is resumed:
blocks whose chunks the completion record marks as finished are not computed again. Everything
is decided while planning, before any task runs.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
import string
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipelines.errors import ImageIOError
from pipelines.io.items import ImageItem
from pipelines.io.zarr_publish import UNFINISHED_ATTR, publish, reopen, work_path
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
from pipelines.runner.outputs import FollowUp, OutputStatus
from pipelines.runner.tasks import task


def write_zarr(items: Sequence[ImageItem], path: str, overwrite: bool, restart: bool) -> list[Any]:
    """Store tasks for every unfinished block of every output array named by ``path``, each
    output's status, and the follow-up that publishes it once its chunks are stored."""
    entries: list[Any] = []
    for target, members in group_outputs(items, path):
        spec = output_spec(target, members)
        work = plan_work(spec, inspect_output, overwrite, restart)
        existing = work.existing
        if work.complete:
            assert existing is not None
            entries.append(OutputStatus(target, int(existing.done.size), int(existing.done.size)))
            continue
        if existing is not None:
            # its chunks, which the record's grid follows
            spec = replace(spec, path=work.path, chunks=existing.chunks)
            done = existing.done
        else:
            spec = replace(spec, path=work.path)
            done = np.zeros(spec.grid, dtype=bool)
        entries.append(OutputStatus(target, int(done.size), int(done.sum()), published=False))
        prepared = task(prepare_work, spec, work.mode, work.reopen, target, name="prepare")
        entries.extend(block_tasks(spec, members, prepared, done) or [prepared_only(prepared)])
        entries.append(
            FollowUp(f"{target} publish", functools.partial(publish_tasks, work.path, target))
        )
    return entries


@dataclass(frozen=True)
class Work:
    """Where and how an output is written this run (see :func:`plan_work`).

    ``found``: where ``existing`` (what a resume continues) was found; ``reopen``: it is a
    published output, moved back to ``path`` by the first task.
    """

    path: str
    mode: Mode
    existing: Existing | None = None
    found: str = ""
    reopen: bool = False
    complete: bool = False


def _all_done(path: str, existing: Existing) -> bool:
    return bool(existing.done.all())


def plan_work(
    spec: OutputSpec,
    inspect: Callable[[str], Existing | None],
    overwrite: bool,
    restart: bool,
    complete: Callable[[str, Existing], bool] = _all_done,
) -> Work:
    """Decide from the output at ``spec.path`` and an unfinished one at its work path.

    A finished output of this job (``complete``) needs nothing (unless ``restart``); one of
    another job is refused unless ``overwrite``, and replaced only when the new one is published.
    An unfinished output at the work path is resumed if it is this job's, else replaced under the
    same rule. A published output whose records say it is unfinished (an older version's, or a
    damaged one) is moved back to the work path and resumed.
    """
    target = spec.path
    work = work_path(target)
    final = inspect(target)
    final_mode = decide(spec, final, overwrite, restart)
    if final_mode == "resume":
        assert final is not None
        if complete(target, final):
            return Work(target, "resume", final, target, complete=True)
    partial = inspect(work) if work != target else None
    if partial is not None:
        mode = decide(replace(spec, path=work), partial, overwrite, restart)
        return Work(work, mode, partial if mode == "resume" else None, work)
    if final_mode == "resume":
        return Work(work, "resume", final, target, reopen=work != target)
    if work == target and final is not None:
        return Work(work, "replace")  # in place (a URL): the old array is replaced now
    return Work(work, "create")


def prepare_work(spec: OutputSpec, mode: Mode, move_back: bool, target: str) -> str:
    """The first task of an output: move a published unfinished output back, or create the array."""
    if move_back:
        reopen(target, spec.path)
        remove_orphans(spec.path)
    elif mode == "resume":
        remove_orphans(spec.path)  # before any task of this run could be writing there
    return prepare_output(spec, mode)


def prepared_only(prepared: Any) -> Any:
    """A task that runs the preparation alone (when no chunk is left to store, the follow-ups
    still need it: a published output moved back, orphans removed)."""
    return task(_nothing, prepared, name="prepare")


def _nothing(prepared: str) -> None:
    return None


def publish_tasks(work: str, target: str) -> list[Any]:
    """The follow-up of an output whose chunks are stored: publish it (see :func:`publish`)."""
    return [task(publish, work, target, name="publish")]


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
        UNFINISHED_ATTR: True,
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
    spec: OutputSpec, items: Sequence[ImageItem], prepared: Any, done: np.ndarray
) -> list[Any]:
    """One store task per block with an unfinished chunk (each depends on ``prepared``)."""
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
    return tasks


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
