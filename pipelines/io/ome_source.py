"""OME-Zarr images as pipeline images: one lazy (y, x[, c]) image per plane and channel group.

Stages see 2-D images: super-resolution and filters apply to y and x only. A level of an NGFF
image is cut into planes along every axis but the channel axis, y and x (t, z, ...); each plane
becomes one pipeline image holding all selected channels when there are 3 of them (an RGB-like
image, for stages with a colour model) and otherwise one image per channel (grey). Samples are
mapped to float32 through a per-channel intensity window (:mod:`pipelines.io.intensity`), which
the writers undo, so outputs are in the input's units and dtype.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.errors import ImageIOError
from pipelines.io.intensity import Window, dtype_window, normalise
from pipelines.io.items import ImageItem, ImageMeta
from pipelines.io.ome import OmeImage, OmePlane, ome_attributes, parse_image
from pipelines.io.zarr_publish import refuse_unfinished
from pipelines.io.zarr_source import DTYPES, check_blocks, zarr_name

RGB_LIKE = 3
"""Channel count read as one colour image; any other count is read channel by channel."""

IntensityRange = str | tuple[float, float] | tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class OmeOptions:
    """What to read of an OME-Zarr image: level, channels, ranges of other axes, intensity window."""

    level: int = 0
    channels: tuple[int, ...] | None = None
    ranges: Mapping[str, int | str] = field(default_factory=dict)
    intensity: IntensityRange = "auto"
    chunk: int | None = None


def open_ome(path: str) -> OmeImage | None:
    """The NGFF image at ``path``, or None when ``path`` is not an OME-Zarr image group.

    An image that a run is still writing is refused (:func:`refuse_unfinished`).
    """
    import zarr

    try:
        node = zarr.open(path, mode="r")
    except Exception:
        return None
    if not isinstance(node, zarr.Group):
        return None
    refuse_unfinished(str(path), dict(node.attrs))  # a URL image still being written
    if ome_attributes(dict(node.attrs)) is None:
        return None
    return parse_image(str(path).rstrip("/"), dict(node.attrs))


def read_ome(image: OmeImage, index: int, options: OmeOptions) -> list[ImageItem]:
    """Lazy images of one level of ``image``, numbered from ``index``."""
    import dask.array as da
    import zarr

    if not 0 <= options.level < len(image.levels):
        raise ImageIOError(
            f"{image.path}: level {options.level} does not exist; the image has levels 0 to {len(image.levels) - 1}"
        )
    level_path = f"{image.path}/{image.levels[options.level].path}"
    try:
        array = zarr.open_array(level_path, mode="r")
    except Exception as exc:  # missing or broken level metadata
        raise ImageIOError(
            f"{level_path}: cannot open the OME-Zarr level ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None
    check_blocks(level_path, array.shape, array.chunks, array.dtype.itemsize)
    if array.ndim != len(image.axes):
        raise ImageIOError(
            f"{level_path}: array has {array.ndim} axes but the metadata names {len(image.axes)} ({','.join(image.names)})"
        )
    dtype = str(array.dtype)
    if dtype not in (*DTYPES, "int8", "int16", "uint32", "int32"):
        raise ImageIOError(f"{level_path}: OME-Zarr samples of type {dtype} are not supported")
    selection = _selection(image, array.shape, options)
    c_axis = image.channel_axis
    channels = selection[c_axis] if c_axis is not None else [0]
    windows = resolve_windows(image, array, selection, options.intensity, dtype)
    data = da.from_zarr(array)
    name = _base_name(image)
    shape = tuple(len(s) for s in selection)
    items: list[ImageItem] = []
    loop = image.loop_axes
    groups = (
        [list(range(len(channels)))]
        if c_axis is None or len(channels) == RGB_LIKE
        else [[k] for k in range(len(channels))]
    )
    single = _single(shape, image, groups)
    for position in itertools.product(*(range(len(selection[a])) for a in loop)):
        where: list[Any] = [slice(None)] * array.ndim
        for axis, k in zip(loop, position, strict=True):
            where[axis] = selection[axis][k]
        for group in groups:
            if c_axis is not None:
                where[c_axis] = [channels[k] for k in group]
            plane = _plane(data, tuple(where), c_axis, options.chunk)
            plane = normalise(plane, [windows[k] for k in group])
            labels = _labels(image, [channels[k] for k in group])
            suffix = _suffix(image, selection, position, group, single)
            meta = ImageMeta(
                name=f"{name}{suffix}",
                source=f"{level_path}{_describe(image, selection, position, group, channels)}",
                dtype="float32",
                channels=len(group) if c_axis is not None else 1,
                index=index + len(items),
                parent=zarr_name(image.path, level=2),
                channel_names=labels,
                ome=OmePlane(
                    image=image,
                    level=options.level,
                    name=name,
                    shape=shape,
                    position=tuple(position),
                    channels=tuple(group),
                    source_channels=tuple(channels),
                    windows=tuple(windows[k] for k in group),
                    dtype=dtype,
                ),
            )
            items.append(ImageItem(plane, meta))
    return items


def _single(shape: tuple[int, ...], image: OmeImage, groups: list[list[int]]) -> bool:
    return len(groups) == 1 and all(shape[a] == 1 for a in image.loop_axes)


def _plane(data: Any, where: tuple[Any, ...], c_axis: int | None, chunk: int | None) -> Any:
    """The (y, x[, c]) image at ``where``: loop axes indexed, channels last, blocks as asked."""
    import dask.array as da

    picked = data[where]
    if c_axis is not None:
        kept_c = sum(1 for i, w in enumerate(where) if i < c_axis and not isinstance(w, int))
        picked = da.moveaxis(picked, kept_c, -1)
        if picked.shape[-1] == 1:
            picked = picked[..., 0]
    if chunk:
        return picked.rechunk((chunk, chunk) + ((-1,) if picked.ndim == 3 else ()))
    return picked.rechunk({2: -1}) if picked.ndim == 3 else picked


def _selection(image: OmeImage, shape: tuple[int, ...], options: OmeOptions) -> list[list[int]]:
    """The indices read along each axis: all of y and x, and the chosen ones of the others."""
    names = image.names
    unknown = [n for n in options.ranges if n not in names]
    if unknown:
        raise ImageIOError(
            f"{image.path}: the image has no axis {unknown[0]!r} (its axes are {', '.join(names)})"
        )
    picked: list[list[int]] = []
    for axis, (name, size) in enumerate(zip(names, shape, strict=True)):
        if axis == image.channel_axis and options.channels is not None:
            bad = [c for c in options.channels if not 0 <= c < size]
            if bad:
                raise ImageIOError(
                    f"{image.path}: channel {bad[0]} does not exist; the image has channels 0 to {size - 1}"
                )
            picked.append(list(options.channels))
        elif name in options.ranges:
            picked.append(_indices(image.path, name, options.ranges[name], size))
        else:
            picked.append(list(range(size)))
    if options.channels is not None and image.channel_axis is None:
        raise ImageIOError(f"{image.path}: channels were chosen but the image has no channel axis")
    for axis in (len(names) - 2, len(names) - 1):
        if names[axis] in options.ranges:
            raise ImageIOError(
                f"{image.path}: {names[axis]} is an image axis and is always read whole"
            )
    return picked


def _indices(path: str, axis: str, value: int | str, size: int) -> list[int]:
    """An index (``5``) or a Python-style range (``"5:10"``, ``":3"``, ``"2:"``) along one axis."""
    text = str(value).strip()
    try:
        if ":" in text:
            start, stop = (part.strip() for part in text.split(":", 1))
            chosen = list(range(size))[
                slice(int(start) if start else None, int(stop) if stop else None)
            ]
        else:
            k = int(text)
            chosen = [k] if 0 <= k < size else []
    except ValueError:
        raise ImageIOError(
            f"{path}: {axis}: {value!r} is not an index or a range such as 5:10"
        ) from None
    if not chosen:
        raise ImageIOError(
            f"{path}: {axis}: {value!r} selects nothing; the axis has indices 0 to {size - 1}"
        )
    return chosen


def resolve_windows(
    image: OmeImage,
    array: Any,
    selection: Sequence[Sequence[int]],
    intensity: IntensityRange,
    dtype: str,
) -> list[Window]:
    """One intensity window per selected channel, from the dtype, ``omero``, the data or as given.

    ``auto`` takes the range omero's window records (``min``/``max``) when every channel has one,
    else the dtype's range for integers, else the data's minimum and maximum (one pass over it).
    ``omero`` takes omero's display window (``start``/``end``): values outside it clip.
    """
    c_axis = image.channel_axis
    channels = list(selection[c_axis]) if c_axis is not None else [0]
    if not isinstance(intensity, str):
        windows = given_windows(image.path, intensity, len(channels))
    elif intensity == "dtype":
        windows = [dtype_window(dtype)] * len(channels)
    elif intensity in ("omero", "auto"):
        keys = ("start", "end") if intensity == "omero" else ("min", "max")
        found = _omero_windows(image, channels, keys)
        if found is not None:
            windows = found
        elif intensity == "omero":
            raise ImageIOError(
                f"{image.path}: intensity_range omero needs omero.channels[].window.start/end for every channel"
            )
        elif np.issubdtype(np.dtype(dtype), np.integer):
            windows = [dtype_window(dtype)] * len(channels)
        else:
            windows = data_windows(array, selection, c_axis)
    elif intensity == "data":
        windows = data_windows(array, selection, c_axis)
    else:
        raise ImageIOError(
            f"{image.path}: intensity_range {intensity!r} is not auto, dtype, omero, data or [low, high]"
        )
    for c, (lo, hi) in zip(channels, windows, strict=True):
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ImageIOError(
                f"{image.path}: channel {c} has intensity window [{lo:g}, {hi:g}]; expected low < high"
            )
    return windows


def given_windows(path: str, value: Any, channels: int) -> list[Window]:
    """One [low, high] pair for every channel, or one pair per channel."""
    pairs = list(value)
    if len(pairs) == 2 and all(isinstance(v, (int, float)) for v in pairs):
        return [(float(pairs[0]), float(pairs[1]))] * channels
    if len(pairs) != channels:
        raise ImageIOError(
            f"{path}: intensity_range gives {len(pairs)} windows for {channels} channels"
        )
    return [(float(lo), float(hi)) for lo, hi in pairs]


def _omero_windows(
    image: OmeImage, channels: Sequence[int], keys: tuple[str, str]
) -> list[Window] | None:
    listed = (image.omero or {}).get("channels")
    if not isinstance(listed, list):
        return None
    out: list[Window] = []
    for c in channels:
        window = (
            listed[c].get("window") if c < len(listed) and isinstance(listed[c], Mapping) else None
        )
        if not isinstance(window, Mapping) or not all(
            isinstance(window.get(k), (int, float)) for k in keys
        ):
            return None
        out.append((float(window[keys[0]]), float(window[keys[1]])))
    return out


def data_windows(
    array: Any, selection: Sequence[Sequence[int]], c_axis: int | None
) -> list[Window]:
    """Each selected channel's minimum and maximum, computed block by block with Dask."""
    import dask
    import dask.array as da

    data = da.from_zarr(array)
    channels = selection[c_axis] if c_axis is not None else [None]
    lows, highs = [], []
    for c in channels:
        part = data if c is None else da.take(data, [c], axis=c_axis)
        lows.append(part.min())
        highs.append(part.max())
    values = dask.compute(*lows, *highs)
    n = len(channels)
    return [(float(values[k]), float(values[n + k])) for k in range(n)]


def _base_name(image: OmeImage) -> str:
    name = zarr_name(image.path)
    return name[: -len(".ome")] if name.lower().endswith(".ome") else name


def _labels(image: OmeImage, channels: Sequence[int]) -> tuple[str, ...]:
    listed = (image.omero or {}).get("channels")
    labels = []
    for c in channels:
        label = (
            listed[c].get("label")
            if isinstance(listed, list) and c < len(listed) and isinstance(listed[c], Mapping)
            else None
        )
        labels.append(label if isinstance(label, str) else f"c{c}")
    return tuple(labels)


def _suffix(
    image: OmeImage,
    selection: Sequence[Sequence[int]],
    position: Sequence[int],
    group: Sequence[int],
    single: bool,
) -> str:
    """``_t0_z5_c2``: the plane's source indices, so that file outputs get distinct names."""
    if single:
        return ""
    parts = [
        f"{image.names[a]}{selection[a][k]}" for a, k in zip(image.loop_axes, position, strict=True)
    ]
    c_axis = image.channel_axis
    if c_axis is not None and len(group) == 1:
        parts.append(f"{image.names[c_axis]}{selection[c_axis][group[0]]}")
    return "".join(f"_{p}" for p in parts)


def _describe(
    image: OmeImage,
    selection: Sequence[Sequence[int]],
    position: Sequence[int],
    group: Sequence[int],
    channels: Sequence[int],
) -> str:
    parts = [
        f"{image.names[a]}={selection[a][k]}"
        for a, k in zip(image.loop_axes, position, strict=True)
    ]
    if image.channel_axis is not None:
        parts.append(
            f"{image.names[image.channel_axis]}={','.join(str(channels[k]) for k in group)}"
        )
    return f"[{', '.join(parts)}]" if parts else ""
