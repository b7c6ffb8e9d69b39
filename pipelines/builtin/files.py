"""The built-in source and sink, ``builtin.read`` and ``builtin.write``: image files or Zarr arrays.

Both work at the Dask level (a source returns lazy images, a sink returns write tasks). A path
with a ``.zarr`` component goes to :mod:`pipelines.io.zarr_source` / :mod:`pipelines.io.zarr_sink`;
anything else is image files.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from pipelines.errors import ImageIOError
from pipelines.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    expand_inputs,
    read_image,
    write_image,
)
from pipelines.io.items import ImageItem, ImageMeta, channels_of
from pipelines.io.probe import probe_image
from pipelines.io.zarr_sink import write_zarr
from pipelines.io.zarr_source import is_zarr_path, read_zarr
from pipelines.runner.registry import StageParams
from pipelines.runner.tasks import task

NAME_FIELDS = ("name", "index", "parent", "ext")
"""Placeholders of ``builtin.write``'s path pattern."""

_NO_ALPHA = (".jpg", ".jpeg", ".bmp")


class ReadParams(StageParams):
    """Parameters of ``builtin.read``."""

    path: str | list[str] = Field(
        description="an image file, a glob such as photos/*.jpg, a folder (searched recursively), or a Zarr array or "
        "group (a path with a .zarr part, a glob such as tiles/*.zarr, or a URL): (H, W[, C]) is one image, "
        "(N, H, W, C) or a group a dataset; or a list of them"
    )
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        description="refuse image files with more pixels than this (decompression-bomb guard)",
    )
    chunk: int | None = Field(
        None,
        ge=8,
        description="block side in pixels for chunked processing; default: a Zarr array's own chunks, "
        "and one block per image file",
    )


class WriteParams(StageParams):
    """Parameters of ``builtin.write``."""

    path: str = Field(
        description="output path pattern; {name} is the input's file name without extension, {index} its "
        "position in the batch, {parent} its folder's name, {ext} its extension; the extension chooses the format. "
        "A .zarr path is a Zarr array: one per image if the path has placeholders, else one array holding the "
        "image, or an (N, H, W, C) dataset of a batch of equal images"
    )
    overwrite: bool = Field(
        False,
        description="replace existing files, or a Zarr array made by another job (refused by default)",
    )
    restart: bool = Field(
        False,
        description="Zarr: recompute every chunk instead of resuming an unfinished run of the same job",
    )

    @field_validator("path")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        try:
            names = [
                field for _, field, _, _ in string.Formatter().parse(value) if field is not None
            ]
        except ValueError as exc:
            raise ValueError(f"bad path pattern {value!r}: {exc}") from None
        unknown = [n for n in names if n not in NAME_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}} in {value!r}; use {', '.join('{' + n + '}' for n in NAME_FIELDS)}"
            )
        suffix = Path(value).suffix.lower()
        if "{ext}" not in value and suffix not in IMAGE_SUFFIXES and not is_zarr_path(value):
            raise ValueError(
                f"{value!r} does not end in an image extension ({', '.join(IMAGE_SUFFIXES)}) or .zarr"
            )
        return value


# --------------------------------------------------------------------------- read


def read_images(params: ReadParams) -> list[ImageItem]:
    """Lazy images: one per file (shapes from the headers, decoded when computed), or from Zarr arrays."""
    patterns = [params.path] if isinstance(params.path, str) else list(params.path)
    items: list[ImageItem] = []
    seen: set[Path] = set()
    for pattern in patterns:
        if is_zarr_path(pattern):
            for store in _zarr_matches(pattern):
                items.extend(read_zarr(store, len(items), params.chunk))
            continue
        for path in expand_inputs([pattern]):
            if path not in seen:
                seen.add(path)
                items.append(read_file(path, len(items), params))
    return items


def _zarr_matches(pattern: str) -> list[str]:
    """The Zarr paths a local glob such as ``tiles/*.zarr`` names (sorted), or the path itself."""
    import glob

    if "://" in pattern or not glob.has_magic(pattern):
        return [pattern]
    found = sorted(glob.glob(pattern))
    if not found:
        raise ImageIOError(f"{pattern}: no Zarr array matches")
    return found


def read_file(path: Path, index: int, params: ReadParams) -> ImageItem:
    """One image file as a lazy image, split into ``params.chunk`` blocks if set."""
    import dask.array as da

    shape, dtype = probe_image(path, params.max_pixels)
    pixels = task(
        load_image, str(path), params.max_pixels, shape, dtype.name, name=f"read-{path.stem}"
    )
    data = da.from_delayed(pixels, shape, dtype)
    if params.chunk:
        data = data.rechunk((params.chunk, params.chunk) + ((-1,) if len(shape) == 3 else ()))
    meta = ImageMeta(path.stem, str(path), dtype.name, channels_of(shape), index, path.parent.name)
    return ImageItem(data, meta)


def load_image(path: str, max_pixels: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Decode ``path``, checking that it still matches what was planned from its header."""
    array = read_image(path, max_pixels)
    if array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
        raise ImageIOError(
            f"{path}: decoded as {array.dtype} {array.shape}, but its header said {np.dtype(dtype)} {tuple(shape)} "
            "(was the file changed during the run?)"
        )
    return array


# --------------------------------------------------------------------------- write


def write_images(items: list[ImageItem], params: WriteParams) -> list[Any]:
    """One write task per image (or per Zarr block); refuses clashing or existing outputs before anything runs."""
    if is_zarr_path(params.path):
        return write_zarr(items, params.path, params.overwrite, params.restart)
    planned: dict[Path, str] = {}
    tasks = []
    for item in items:
        target = output_path(params.path, item.meta)
        if target in planned:
            raise ImageIOError(
                f"{target}: both {planned[target]} and {item.meta.source or item.meta.name} would be written "
                "here; put {name} or {index} in the path pattern"
            )
        planned[target] = item.meta.source or item.meta.name
        if target.exists() and not params.overwrite:
            raise ImageIOError(f"{target}: output exists (set overwrite: true to replace it)")
        if item.meta.has_alpha and target.suffix.lower() in _NO_ALPHA:
            raise ImageIOError(
                f"{target}: {target.suffix} cannot store the alpha channel of {item.meta.name}; write .png, .tif or .webp"
            )
        tasks.append(
            task(
                write_one, item.data, str(target), params.overwrite, name=f"write-{item.meta.name}"
            )
        )
    return tasks


def output_path(pattern: str, meta: ImageMeta) -> Path:
    """The file ``pattern`` names for an image."""
    ext = Path(meta.source).suffix.lstrip(".") if meta.source else "png"
    return Path(pattern.format(name=meta.name, index=meta.index, parent=meta.parent, ext=ext))


def write_one(array: np.ndarray, path: str, overwrite: bool) -> str:
    """Write one image atomically (temp file + rename), keeping bit depth and alpha."""
    return str(write_image(path, np.asarray(array), overwrite=overwrite))
