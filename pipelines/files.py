"""The built-in image-file source and sink: ``builtin.read`` and ``builtin.write``.

Both work at the Dask level (a source returns lazy images, a sink returns write tasks), so a
Zarr reader/writer can be added beside them (``da.from_zarr`` / ``da.to_zarr``) without
touching the runner.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from pipelines.errors import ImageIOError
from pipelines.imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    expand_inputs,
    read_image,
    write_image,
)
from pipelines.images import ImageItem, ImageMeta, channels_of
from pipelines.probe import probe_image
from pipelines.registry import StageParams
from pipelines.tasks import task

NAME_FIELDS = ("name", "index", "parent", "ext")
"""Placeholders of ``builtin.write``'s path pattern."""

_NO_ALPHA = (".jpg", ".jpeg", ".bmp")


class ReadParams(StageParams):
    """Parameters of ``builtin.read``."""

    path: str | list[str] = Field(
        description="an image file, a glob such as photos/*.jpg, or a folder (searched recursively); or a list of them"
    )
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS, ge=1, description="refuse images with more pixels than this (decompression-bomb guard)"
    )


class WriteParams(StageParams):
    """Parameters of ``builtin.write``."""

    path: str = Field(
        description="output path pattern; {name} is the input's file name without extension, {index} its "
        "position in the batch, {parent} its folder's name, {ext} its extension; the extension chooses the format"
    )
    overwrite: bool = Field(False, description="replace existing files (refused by default)")

    @field_validator("path")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        try:
            names = [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]
        except ValueError as exc:
            raise ValueError(f"bad path pattern {value!r}: {exc}") from None
        unknown = [n for n in names if n not in NAME_FIELDS]
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} in {value!r}; use {', '.join('{' + n + '}' for n in NAME_FIELDS)}")
        suffix = Path(value).suffix.lower()
        if "{ext}" not in value and suffix not in IMAGE_SUFFIXES:
            raise ValueError(f"{value!r} does not end in an image extension ({', '.join(IMAGE_SUFFIXES)})")
        return value


# --------------------------------------------------------------------------- read


def read_images(params: ReadParams) -> list[ImageItem]:
    """One lazy image per file; shapes come from the headers, pixels are decoded when computed."""
    import dask.array as da

    patterns = [params.path] if isinstance(params.path, str) else list(params.path)
    items = []
    for index, path in enumerate(expand_inputs(patterns)):
        shape, dtype = probe_image(path, params.max_pixels)
        pixels = task(load_image, str(path), params.max_pixels, shape, dtype.name, name=f"read-{path.stem}")
        meta = ImageMeta(path.stem, str(path), dtype.name, channels_of(shape), index, path.parent.name)
        items.append(ImageItem(da.from_delayed(pixels, shape, dtype), meta))
    return items


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
    """One write task per image; refuses clashing or existing outputs before anything runs."""
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
            raise ImageIOError(f"{target}: {target.suffix} cannot store the alpha channel of {item.meta.name}; write .png, .tif or .webp")
        tasks.append(task(write_one, item.data, str(target), params.overwrite, name=f"write-{item.meta.name}"))
    return tasks


def output_path(pattern: str, meta: ImageMeta) -> Path:
    """The file ``pattern`` names for an image."""
    ext = Path(meta.source).suffix.lstrip(".") if meta.source else "png"
    return Path(pattern.format(name=meta.name, index=meta.index, parent=meta.parent, ext=ext))


def write_one(array: np.ndarray, path: str, overwrite: bool) -> str:
    """Write one image atomically (temp file + rename), keeping bit depth and alpha."""
    return str(write_image(path, np.asarray(array), overwrite=overwrite))
