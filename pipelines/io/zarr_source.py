"""Zarr arrays as pipeline images: recognising Zarr paths, reading and checking input arrays.

An input array holds one image, (H, W) or (H, W, C) with C = 1, 3 or 4, or a dataset of equal
images, (N, H, W, C); samples are uint8, uint16 or float. Zarr v3 and v2 arrays are read, from a
local path or any URL zarr's fsspec support opens (``s3://...``). A group is a dataset of its
arrays (in name order). Each image of a dataset becomes its own lazy image in the batch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipelines.errors import ImageIOError
from pipelines.io.items import ImageItem, ImageMeta
from pipelines.io.zarr_publish import refuse_unfinished

DTYPES = ("uint8", "uint16", "float32", "float64")
"""Sample types accepted in Zarr inputs and written to Zarr outputs."""

CHANNELS = (1, 3, 4)
DEFAULT_CHANNEL_NAMES: dict[int, tuple[str, ...]] = {
    1: ("Y",),
    3: ("R", "G", "B"),
    4: ("R", "G", "B", "A"),
}
_METADATA_FILES = ("zarr.json", ".zarray", ".zgroup")
_PARTS = re.compile(r"[/\\]")


def is_zarr_path(path: str) -> bool:
    """True for a path or URL with a ``.zarr`` component, or a local folder holding Zarr metadata."""
    text = str(path).rstrip("/\\")
    if any(part.lower().endswith(".zarr") for part in _PARTS.split(text)):
        return True
    local = Path(text)
    return (
        "://" not in text and local.is_dir() and any((local / n).is_file() for n in _METADATA_FILES)
    )


def zarr_name(path: str, level: int = 1) -> str:
    """An image name for a Zarr path: its last component (``level=2``: the one before) without ``.zarr``."""
    parts = _PARTS.split(str(path).rstrip("/\\"))
    if len(parts) < level:
        return ""
    part = parts[-level]
    return part[: -len(".zarr")] if part.lower().endswith(".zarr") else part


def open_arrays(path: str) -> list[tuple[str, Any]]:
    """(path, read-only array) pairs: the array at ``path``, or every array of the group there.

    An output that a run has not finished is refused with a message saying how to resume it.
    """
    import zarr

    try:
        node = zarr.open(path, mode="r")
    except FileNotFoundError:
        refuse_unfinished(path)  # only its work path is there: a run stopped before the end
        raise ImageIOError(f"{path}: no Zarr array or group here") from None
    except Exception as exc:
        raise ImageIOError(
            f"{path}: cannot open as Zarr ({type(exc).__name__}: {' '.join(str(exc).split())})"
        ) from None
    refuse_unfinished(path, dict(node.attrs))  # still being written (in place: a URL)
    if isinstance(node, zarr.Group):
        try:  # reading the members parses their metadata, which may be broken
            names = sorted(node.array_keys())
            arrays: list[tuple[str, Any]] = [
                (f"{str(path).rstrip('/')}/{name}", node[name]) for name in names
            ]
        except Exception as exc:
            raise ImageIOError(
                f"{path}: cannot read the group's arrays ({type(exc).__name__}: {' '.join(str(exc).split())})"
            ) from None
        if not names:
            raise ImageIOError(f"{path}: a Zarr group without arrays")
    else:
        arrays = [(str(path), node)]
    for where, array in arrays:
        check_input(where, array.shape, str(array.dtype))
        check_blocks(where, array.shape, array.chunks, array.dtype.itemsize)
    return arrays


MAX_BLOCKS = 1 << 22
"""Most chunks an input array may have (4 Mi: a 500k x 500k image in 256-pixel chunks); more
would make the lazy graph itself too large to hold, whatever the pixels."""


MAX_CHUNK_BYTES = 1 << 29
"""Largest chunk (512 MiB) an input array may declare: reading any pixel decodes a whole chunk."""


def check_blocks(
    path: str, shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int = 1
) -> None:
    """Refuse chunk grids too large to plan (huge shapes, tiny chunks) and chunks too large to read."""
    size = itemsize
    for c in chunks:
        size *= int(c)
    if size > MAX_CHUNK_BYTES:
        raise ImageIOError(
            f"{path}: Zarr chunks of {tuple(chunks)} are {size} bytes each, over the limit of "
            f"{MAX_CHUNK_BYTES}; rechunk it into smaller chunks"
        )
    count = 1
    for n, c in zip(shape, chunks, strict=False):
        count *= -(-int(n) // max(int(c), 1))
    if count > MAX_BLOCKS:
        raise ImageIOError(
            f"{path}: Zarr array of shape {tuple(shape)} in chunks of {tuple(chunks)} has {count} "
            f"chunks, over the limit of {MAX_BLOCKS}; rechunk it into larger chunks"
        )


def check_input(path: str, shape: tuple[int, ...], dtype: str) -> None:
    """Refuse shapes and sample types a pipeline image cannot have, naming the array."""
    ndim = len(shape)
    if ndim not in (2, 3, 4) or (ndim >= 3 and shape[-1] not in CHANNELS):
        raise ImageIOError(
            f"{path}: Zarr array has shape {tuple(shape)}; expected (H, W), (H, W, C) or (N, H, W, C) with C = 1, 3 or 4"
        )
    if min(shape) < 1:
        raise ImageIOError(f"{path}: Zarr array of shape {tuple(shape)} is empty")
    if dtype not in DTYPES:
        raise ImageIOError(
            f"{path}: Zarr array has dtype {dtype}; expected one of {', '.join(DTYPES)}"
        )


def read_zarr(path: str, index: int, chunk: int | None) -> list[ImageItem]:
    """Lazy images of a Zarr array or group: one per image, numbered from ``index``."""
    items: list[ImageItem] = []
    for where, array in open_arrays(path):
        items.extend(array_images(where, array, index + len(items), chunk))
    return items


def array_images(path: str, array: Any, index: int, chunk: int | None) -> list[ImageItem]:
    """One lazy image, or one per image of an (N, H, W, C) dataset; blocks hold every channel."""
    import dask.array as da

    if chunk:  # the blocks this rechunking makes must be plannable too
        check_blocks(path, array.shape, (1,) * (array.ndim - 3) + (chunk, chunk, 4))
    data = da.from_zarr(array)
    if chunk:
        data = data.rechunk(
            (1,) * (data.ndim - 3) + (chunk, chunk) + ((-1,) if data.ndim >= 3 else ())
        )
    elif data.ndim >= 3:
        data = data.rechunk({data.ndim - 1: -1})
    names = _channel_names(dict(array.attrs), array.shape)
    name, parent, dtype = zarr_name(path), zarr_name(path, level=2), str(array.dtype)
    if array.ndim < 4:
        return [
            ImageItem(
                data, ImageMeta(name, path, dtype, _channels(array.shape), index, parent, names)
            )
        ]
    return [
        ImageItem(
            data[n],
            ImageMeta(name, f"{path}[{n}]", dtype, array.shape[-1], index + n, parent, names),
        )
        for n in range(array.shape[0])
    ]


def _channels(shape: tuple[int, ...]) -> int:
    return 1 if len(shape) == 2 else int(shape[-1])


def _channel_names(attrs: dict[str, Any], shape: tuple[int, ...]) -> tuple[str, ...]:
    """The array's ``channel_names`` attribute when it fits, else R, G, B(, A) or Y."""
    channels = _channels(shape)
    names = attrs.get("channel_names")
    if (
        isinstance(names, list)
        and len(names) == channels
        and all(isinstance(n, str) for n in names)
    ):
        return tuple(names)
    return DEFAULT_CHANNEL_NAMES[channels]
