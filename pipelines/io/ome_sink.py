"""``builtin.write`` to OME-Zarr: the processed level 0 plus a pyramid, with NGFF 0.5 metadata.

The images read from one OME-Zarr image (its planes and channel groups, see
:mod:`pipelines.io.ome_source`) are written back into one image group: level ``0`` holds them
in the input's axis order, its samples returned to the input's units and dtype; levels ``1..``
halve y and x each (``mean`` or ``nearest``), each computed chunk by chunk from the level
written before it once that level is complete (a follow-up phase, so memory stays bounded by a
chunk). ``multiscales`` gets the input's axes, and scales and translations that keep the physical
extent (pixels ``factor`` times smaller after an upscale); ``omero`` is carried over for the
chosen channels; our provenance goes under the ``pipelines`` attribute. Each level has a
completion record, so a killed job resumes level 0 chunk by chunk and then its pyramid. The
image is written under its work path without ``ome`` metadata; both come when it is complete
(:mod:`pipelines.io.zarr_publish`), so no reader takes a half-written image for a finished one.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import ImageIOError
from pipelines.io.intensity import restore
from pipelines.io.items import ImageItem
from pipelines.io.ome import (
    WRITE_VERSION,
    Level,
    OmeImage,
    OmePlane,
    downsampled_level,
    multiscales_json,
    omero_subset,
    upscaled_level,
)
from pipelines.io.ome_pyramid import chunk_count, pyramid_complete, pyramid_done, pyramid_tasks
from pipelines.io.ome_pyramid import downsample as downsample  # where tests and benches find it
from pipelines.io.zarr_publish import UNFINISHED_ATTR, publish, reopen
from pipelines.io.zarr_sink import align, package_version, plan_work, prepared_only
from pipelines.io.zarr_store import (
    JOB_ATTR,
    RECORD,
    RUN_ATTR,
    Existing,
    OutputSpec,
    inspect_output,
    prepare_output,
    remove_orphans,
    store_block,
)
from pipelines.runner.outputs import FollowUp, OutputStatus
from pipelines.runner.tasks import task

NAMESPACE = "pipelines"
"""Group attribute holding our provenance (steps, source, job fingerprint, version, time)."""

METHODS = ("mean", "nearest")


@dataclass(frozen=True)
class OmeOutput:
    """An OME-Zarr image to write: its group, the source image, and one array spec per level."""

    path: str
    source: OmeImage
    levels: tuple[OutputSpec, ...]
    attributes: dict[str, Any]
    method: str
    target: str = ""
    """Where the image is published; ``path`` is where it is written until then."""


def write_ome(
    items: Sequence[ImageItem],
    pattern: str,
    overwrite: bool,
    restart: bool,
    levels: int | None,
    method: str,
) -> list[Any]:
    """Status, level-0 store tasks and the pyramid (then publish) follow-up of every OME-Zarr output."""
    entries: list[Any] = []
    for target, members in group_images(items, pattern):
        planned = plan_output(target, members, levels, method)
        work = plan_work(
            replace(planned.levels[0], path=target),
            inspect_group,
            overwrite,
            restart,
            complete=functools.partial(finished_at, planned),
        )
        if work.complete:
            entries.append(
                OutputStatus(target, chunk_count(planned.levels), chunk_count(planned.levels))
            )
            continue
        out = relocate(planned, work.path)
        existing = work.existing
        if existing is not None:
            done = existing.done
            if existing.chunks != out.levels[0].chunks:
                raise ImageIOError(
                    f"{target}: existing level 0 has chunks {existing.chunks}, this job writes "
                    f"{out.levels[0].chunks}; set restart: true to start over"
                )
        else:
            done = np.zeros(out.levels[0].grid, dtype=bool)
        pyramid = pyramid_done(relocate(planned, work.found).levels) if existing is not None else 0
        entries.append(
            OutputStatus(
                target, chunk_count(out.levels), int(done.sum()) + pyramid, published=False
            )
        )
        prepared = task(prepare_group, out, work.mode, work.reopen, name="prepare")
        entries.extend(level0_tasks(out, members, prepared, done) or [prepared_only(prepared)])
        finish = functools.partial(publish_tasks, out)
        levels_plan = functools.partial(pyramid_tasks, out.levels, out.method, target, finish, 1)
        entries.append(FollowUp(f"{target} pyramid", levels_plan))
    return entries


def finished_at(out: OmeOutput, path: str, existing: Existing) -> bool:
    """Whether the image of ``out`` at ``path`` (level 0 is ``existing``) has every chunk stored."""
    return bool(existing.done.all()) and pyramid_complete(relocate(out, path).levels)


def relocate(out: OmeOutput, path: str) -> OmeOutput:
    """``out`` written at ``path`` (its work path), published at its target."""
    levels = tuple(replace(spec, path=f"{path}/{k}") for k, spec in enumerate(out.levels))
    return replace(out, path=path, levels=levels, target=out.target or out.path)


def group_images(items: Sequence[ImageItem], pattern: str) -> list[tuple[str, list[ImageItem]]]:
    """(output path, images) pairs: the images of one OME-Zarr source go to one output image."""
    groups: dict[str, list[ImageItem]] = {}
    for item in items:
        ome = item.meta.ome
        if ome is None:
            raise ImageIOError(
                f"{pattern}: {item.meta.source or item.meta.name} was not read from OME-Zarr; "
                "format ome-zarr writes OME-Zarr inputs (use format zarr for other images)"
            )
        fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f]
        target = (
            pattern.format(
                name=ome.name, index=item.meta.index, parent=item.meta.parent, ext="zarr"
            )
            if fields
            else pattern
        )
        if "{index}" in pattern:
            raise ImageIOError(
                f"{pattern}: {{index}} numbers planes, but an OME-Zarr output holds a whole image; use {{name}}"
            )
        members = groups.setdefault(target, [])
        if members and _origin(members[0].meta.ome) != _origin(ome):
            raise ImageIOError(
                f"{target}: both {members[0].meta.ome.image.path} and {ome.image.path} would be "  # type: ignore[union-attr]
                "written here; put {name} in the path pattern"
            )
        members.append(item)
    return list(groups.items())


def _origin(ome: OmePlane | None) -> tuple[str, int] | None:
    return None if ome is None else (ome.image.path, ome.level)


def plan_output(
    target: str, items: Sequence[ImageItem], levels: int | None, method: str
) -> OmeOutput:
    """The output image for ``items``: shapes, chunks, NGFF metadata and the job fingerprint."""
    first = items[0]
    ome = first.meta.ome
    assert ome is not None
    image = ome.image
    ndim = len(image.axes)
    for item in items:
        if any(math.isnan(n) for n in item.data.shape):
            raise ImageIOError(
                f"{target}: the size of {item.meta.name} is known only once it is computed; OME-Zarr output needs it beforehand"
            )
        if item.data.shape[:2] != first.data.shape[:2]:
            raise ImageIOError(
                f"{target}: {item.meta.name} is {item.data.shape[:2]} but {first.meta.name} is {first.data.shape[:2]}; "
                "the planes of one OME-Zarr image must stay equal in size"
            )
    height, width = (int(n) for n in first.data.shape[:2])
    shape = (*ome.shape[:-2], height, width)
    factors = (height / ome.shape[-2], width / ome.shape[-1])
    c_axis = image.channel_axis
    chunks = [1] * ndim
    if c_axis is not None:
        chunks[c_axis] = len(ome.channels)
    chunks[-2:] = [int(first.data.chunks[0][0]), int(first.data.chunks[1][0])]
    count = levels if levels is not None else len(image.levels)
    base = upscaled_level(image.levels[ome.level], ndim, factors, "0")
    ngff_levels: list[Level] = [base]
    shapes = [shape]
    for k in range(1, count):
        prev = shapes[-1]
        shapes.append((*prev[:-2], -(-prev[-2] // 2), -(-prev[-1] // 2)))
        ngff_levels.append(downsampled_level(base, ndim, 2**k, method, str(k)))
    run = uuid.uuid4().hex
    job = {
        "format": "ome-zarr",
        "shape": list(shape),
        "dtype": ome.dtype,
        "levels": count,
        "method": method,
        "images": [[i.meta.source, [dict(r) for r in i.meta.history]] for i in items],
    }
    fingerprint = hashlib.sha256(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()[
        :20
    ]
    specs = tuple(
        OutputSpec(
            path=f"{target}/{k}",
            shape=level_shape,
            dtype=ome.dtype,
            chunks=tuple(min(c, n) for c, n in zip(chunks, level_shape, strict=True)),
            dimension_names=image.names,
            attributes={RUN_ATTR: run, JOB_ATTR: fingerprint} if k == 0 else {RUN_ATTR: run},
        )
        for k, level_shape in enumerate(shapes)
    )
    attrs = group_attributes(target, image, ome, items, ngff_levels, factors, fingerprint, method)
    return OmeOutput(target, image, specs, attrs, method)


def group_attributes(
    target: str,
    image: OmeImage,
    ome: OmePlane,
    items: Sequence[ImageItem],
    levels: Sequence[Level],
    factors: tuple[float, float],
    fingerprint: str,
    method: str,
) -> dict[str, Any]:
    """``ome`` (multiscales, omero) and our provenance under ``pipelines``."""
    name = image.name or ome.name
    meta: dict[str, Any] = {
        "version": WRITE_VERSION,
        "multiscales": [
            multiscales_json(
                image,
                image.axes,
                levels,
                name,
                method,
                f"level 0 upscaled x{factors[0]:g} from level {ome.level} of {image.path}; each further "
                f"level halves y and x of the one before ({method} of 2 x 2 pixels)"
                if method == "mean"
                else f"level 0 upscaled x{factors[0]:g} from level {ome.level} of {image.path}; each further "
                "level keeps every other pixel of the one before in y and x (nearest)",
            )
        ],
    }
    omero = omero_subset(image.omero, ome.source_channels)
    if omero is not None:
        meta["omero"] = omero
    steps = [dict(r) for r in items[0].meta.history]
    return {
        "ome": meta,
        NAMESPACE: {
            "source": image.path,
            "source_level": ome.level,
            "channels": list(ome.source_channels),
            "intensity_windows": _windows(items),
            "scale": list(factors),
            "steps": steps,
            "pyramid": {"levels": len(levels), "method": method},
            "completion_record": RECORD,
            "job": fingerprint,
            "version": package_version(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
    }


def _windows(items: Sequence[ImageItem]) -> list[list[float]]:
    out: dict[int, list[float]] = {}
    for item in items:
        ome = item.meta.ome
        assert ome is not None
        for c, window in zip(ome.channels, ome.windows, strict=True):
            out[c] = list(window)
    return [out[c] for c in sorted(out)]


def inspect_group(target: str) -> Any:
    """The existing level 0 at ``target`` (None if nothing is there); refuses what is not an image group."""
    import zarr

    if "://" not in target and Path(target).exists():
        try:
            node = zarr.open(target, mode="r")
        except Exception:
            node = None
        if not isinstance(node, zarr.Group):
            raise ImageIOError(f"{target}: exists and is not a Zarr group; refusing to replace it")
        if "0" not in node:
            raise ImageIOError(
                f"{target}: a Zarr group without a level 0, not made by a pipeline; refusing to replace it"
            )
    return inspect_output(f"{target}/0")


def prepare_group(out: OmeOutput, mode: str, move_back: bool = False) -> str:
    """Create (or recreate) the image group and every level with its record; for resume, keep them.

    The group is created without its ``ome`` metadata, which :func:`publish_image` adds last, so
    that no OME-Zarr reader takes it for an image before it is complete.
    """
    import zarr

    if move_back:
        reopen(out.target, out.path)
    if mode == "resume":
        remove_orphans(out.path)  # before any task of this run could be writing there
        return out.path
    run = out.levels[0].attributes[RUN_ATTR]
    if _created_by(out.levels[0].path, run):
        return out.path
    attributes = {k: v for k, v in out.attributes.items() if k != "ome"}
    try:
        zarr.create_group(
            out.path, overwrite=True, attributes={**attributes, UNFINISHED_ATTR: True}
        )
    except OSError as exc:  # a full disk: nothing is published; a re-run creates it again
        raise ImageIOError(
            f"{out.target}: cannot create the output group at {out.path} "
            f"({exc.strerror or exc}); run again once there is space"
        ) from None
    for spec in out.levels[1:]:
        prepare_output(spec, "create")
    prepare_output(out.levels[0], "create")  # last: its run id says the whole group is ready
    return out.path


def publish_tasks(out: OmeOutput) -> list[Any]:
    """The task that publishes the image once its last level is stored."""
    return [task(publish_image, out, name="publish")]


def publish_image(out: OmeOutput) -> str:
    """Add the ``ome`` metadata to the complete image and rename it into place (see
    :func:`~pipelines.io.zarr_publish.publish`)."""
    members = tuple(spec.path.rsplit("/", 1)[1] for spec in out.levels)
    return publish(out.path, out.target, members, {"ome": out.attributes["ome"]})


def _created_by(path: str, run: str) -> bool:
    import zarr

    try:
        return zarr.open_array(path, mode="r").attrs.get(RUN_ATTR) == run
    except Exception:
        return False


def level0_tasks(
    out: OmeOutput, items: Sequence[ImageItem], prepared: Any, done: np.ndarray
) -> list[Any]:
    """One store task per block of each image with an unfinished chunk in level 0."""
    spec = out.levels[0]
    image = out.source
    c_axis = image.channel_axis
    ndim = len(image.axes)
    tasks = []
    level = _path(prepared, spec.path)
    for item in items:
        ome = item.meta.ome
        assert ome is not None
        data = restore(item.data, ome.windows, ome.dtype)
        data = align(data, spec.chunks[-2:] + ((len(ome.channels),) if data.ndim == 3 else ()))
        nd = to_axes(data, ndim, c_axis)
        offsets = [0] * ndim
        for axis, k in zip(image.loop_axes, ome.position, strict=True):
            offsets[axis] = k
        if c_axis is not None:
            offsets[c_axis] = ome.channels[0]
        blocks = nd.to_delayed(optimize_graph=True)
        for index in np.ndindex(*blocks.shape):
            region = tuple(_span(nd.chunks[axis], i, offsets[axis]) for axis, i in enumerate(index))
            cells = tuple(
                slice(r.start // c, -(-r.stop // c))
                for r, c in zip(region, spec.chunks, strict=True)
            )
            if done[cells].all():
                continue
            tasks.append(task(store_level_block, blocks[index], level, region, cells, name="chunk"))
    return tasks


def store_level_block(
    block: np.ndarray, level: str, region: tuple[slice, ...], cells: tuple[slice, ...]
) -> None:
    """Store one block of level 0 and record it."""
    store_block(block, level, region, cells)


def _path(prepared: Any, level_path: str) -> Any:
    """The level's path, as a task depending on the group being prepared."""
    return task(_level_path, prepared, level_path, name="level")


def _level_path(prepared: str, level_path: str) -> str:
    return level_path


def to_axes(data: Any, ndim: int, c_axis: int | None) -> Any:
    """A (y, x[, c]) Dask image as an ``ndim`` array in the output's axis order (size 1 elsewhere)."""
    import dask.array as da

    if c_axis is None:
        return data[(None,) * (ndim - 2)]
    channels = data if data.ndim == 3 else data[..., None]
    channels = da.moveaxis(channels, -1, 0)
    where = tuple(slice(None) if i == c_axis else None for i in range(ndim - 2))
    return channels[(*where, slice(None), slice(None))]


def _span(chunks: tuple[int, ...], index: int, offset: int) -> slice:
    start = offset + int(sum(chunks[:index]))
    return slice(start, start + int(chunks[index]))
