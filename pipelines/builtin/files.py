"""The built-in source and sink, ``builtin.read`` and ``builtin.write``: image files or Zarr arrays.

Both work at the Dask level (a source returns lazy images, a sink returns write tasks). A path
with a ``.zarr`` component goes to :mod:`pipelines.io.zarr_source` / :mod:`pipelines.io.zarr_sink`;
anything else is image files.
"""

from __future__ import annotations

import string
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from pipelines.builtin.provenance import provenance_of
from pipelines.builtin.video import (
    folder_videos,
    is_video_path,
    read_sequence,
    read_video,
    write_videos,
    writes_video,
)
from pipelines.errors import ImageIOError
from pipelines.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    QUALITY_RANGE,
    expand_inputs,
    read_image,
    read_metadata,
    write_image,
)
from pipelines.io.images.metadata import ImageMetadata
from pipelines.io.intensity import restore
from pipelines.io.items import ImageItem, ImageMeta, channels_of
from pipelines.io.locks import hold, output_location
from pipelines.io.ome_sink import write_ome
from pipelines.io.ome_source import OmeOptions, open_ome, read_ome
from pipelines.io.probe import probe_image
from pipelines.io.video.probe import VIDEO_SUFFIXES
from pipelines.io.video.settings import EncodeSettings
from pipelines.io.zarr_sink import write_zarr
from pipelines.io.zarr_source import is_zarr_path, read_zarr
from pipelines.runner.registry import StageParams
from pipelines.runner.tasks import task

NAME_FIELDS = ("name", "index", "parent", "ext", "frame")
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
    level: int = Field(
        0, ge=0, description="OME-Zarr: the pyramid level to read (0 = full resolution)"
    )
    channels: list[int] | None = Field(
        None, description="OME-Zarr: the channels to read, e.g. [0, 2] (default: all)"
    )
    t: int | str | None = Field(
        None, description='OME-Zarr: the time points to read, an index (0) or a range ("0:5")'
    )
    z: int | str | None = Field(
        None, description="OME-Zarr: the z planes to read, an index (5) or a range (5:10)"
    )
    intensity_range: (
        Literal["auto", "dtype", "omero", "data"] | tuple[float, float] | list[tuple[float, float]]
    ) = Field(
        "auto",
        description="OME-Zarr: the per-channel window mapped to [0, 1] for the stages and back on writing: "
        "auto (omero.window min/max, else the integer dtype's range, else the data's min/max), dtype, "
        "omero (the display window start/end; values outside clip), data, [low, high] or one pair per channel",
    )

    fps: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="video: read a folder or glob of numbered images as one video at this frame rate",
    )
    segment_frames: int | None = Field(
        None,
        ge=1,
        description="video: frames per chunk (each chunk is decoded, processed and encoded as one segment); "
        "default: about 32 MiB of input frames, 8 to 120",
    )
    keep_damaged: bool = Field(
        False,
        description="video: keep the frames before damage (a truncated file) instead of refusing the file",
    )

    def ome_options(self) -> OmeOptions:
        """The OME-Zarr selection these parameters ask for."""
        ranges = {
            name: value for name, value in (("t", self.t), ("z", self.z)) if value is not None
        }
        intensity = self.intensity_range
        return OmeOptions(
            level=self.level,
            channels=None if self.channels is None else tuple(self.channels),
            ranges=ranges,
            intensity=intensity if isinstance(intensity, str) else tuple(intensity),  # type: ignore[arg-type]
            chunk=self.chunk,
        )

    def asks_ome(self) -> bool:
        """True when an OME-Zarr-only parameter is set."""
        return (
            self.level != 0
            or self.channels is not None
            or self.t is not None
            or self.z is not None
            or self.intensity_range != "auto"
        )


class WriteParams(StageParams):
    """Parameters of ``builtin.write``."""

    path: str = Field(
        description="output path pattern; {name} is the input's file name without extension, {index} its "
        "position in the batch, {parent} its folder's name, {ext} its extension, {frame} a video frame's number "
        "(e.g. {frame:06d}); the extension chooses the format (a video suffix such as .mp4, .mkv, .mov or .webm "
        "encodes each video). "
        "A .zarr path is a Zarr array: one per image if the path has placeholders, else one array holding the "
        "image, or an (N, H, W, C) dataset of a batch of equal images"
    )
    overwrite: bool = Field(
        False,
        description="replace existing files, or a Zarr array made by another job (refused by default)",
    )
    restart: bool = Field(
        False,
        description="Zarr and video: recompute every chunk or segment instead of resuming an unfinished run of "
        "the same job",
    )
    format: Literal["auto", "files", "zarr", "ome-zarr"] = Field(
        "auto",
        description="auto: ome-zarr for a .zarr path when the images were read from OME-Zarr, zarr for other "
        ".zarr paths, else image files by extension",
    )
    levels: int | None = Field(
        None,
        ge=1,
        le=32,
        description="ome-zarr: pyramid levels written, level 0 included (default: as many as the input has)",
    )
    downsample: Literal["mean", "nearest"] = Field(
        "mean", description="ome-zarr: how each pyramid level is made from the one before it"
    )
    quality: int | None = Field(
        None,
        ge=QUALITY_RANGE[0],
        le=QUALITY_RANGE[1],
        description="image files: JPEG and WebP encoder quality, 1-100 (default: JPEG 95, WebP lossless); "
        "PNG, TIFF and BMP are lossless and ignore it",
    )
    metadata: bool = Field(
        True,
        description="image files: write the input's ICC profile and EXIF (orientation upright, sizes updated) "
        "and a provenance record (pipeline, steps, parameters, version) as XMP; false writes none of them",
    )

    video_codec: str | None = Field(
        None,
        description="video: encoder (libx264, libx265, libvpx-vp9, ffv1, prores_ks ...); default libvpx-vp9 "
        "for .webm, libx264 otherwise",
    )
    crf: int | None = Field(
        None,
        ge=0,
        le=63,
        description="video: constant quality, lower is better (default 18 for libx264, 20 for libx265/libvpx-vp9)",
    )
    preset: str | None = Field(
        None,
        description="video: libx264/libx265 speed preset (ultrafast ... veryslow; default medium)",
    )
    pix_fmt: str | None = Field(
        None,
        description="video: pixel format written (default from the codec, the input's bit depth and alpha)",
    )

    def encode_settings(self) -> EncodeSettings:
        """The video encoder settings these parameters ask for."""
        return EncodeSettings(
            codec=self.video_codec, crf=self.crf, preset=self.preset, pix_fmt=self.pix_fmt
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
        known = suffix in IMAGE_SUFFIXES or suffix in VIDEO_SUFFIXES
        if "{ext}" not in value and not known and not is_zarr_path(value):
            raise ValueError(
                f"{value!r} does not end in an image extension ({', '.join(IMAGE_SUFFIXES)}), "
                f"a video extension ({', '.join(VIDEO_SUFFIXES)}) or .zarr"
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
                image = open_ome(store)
                if image is not None:
                    items.extend(read_ome(image, len(items), params.ome_options()))
                    continue
                level_of(store)
                if params.asks_ome():
                    raise ImageIOError(
                        f"{store}: not an OME-Zarr image; level, channels, t, z and intensity_range apply to OME-Zarr only"
                    )
                items.extend(read_zarr(store, len(items), params.chunk))
            continue
        if params.asks_ome():
            raise ImageIOError(
                f"{pattern}: level, channels, t, z and intensity_range apply to OME-Zarr images only"
            )
        if params.fps is not None:  # an image sequence, read as one video
            items.append(read_sequence(pattern, len(items), params))
            continue
        for path in [*expand_inputs([pattern]), *folder_videos(pattern)]:
            if path not in seen:
                seen.add(path)
                read = read_video if is_video_path(path) else read_file
                items.append(read(path, len(items), params))
    return items


def level_of(store: str) -> None:
    """Refuse a pyramid level of an OME-Zarr image given as a path: the image is read as a whole."""
    parent, _, name = str(store).rstrip("/").rpartition("/")
    image = open_ome(parent) if parent and "://" not in store else None
    if image is None:
        return
    paths = [level.path for level in image.levels]
    if name in paths:
        raise ImageIOError(
            f"{store}: is level {paths.index(name)} of the OME-Zarr image {parent}; read {parent} "
            f"(with level: {paths.index(name)}) so that its axes and pixel sizes are known"
        )


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
    meta = ImageMeta(
        path.stem,
        str(path),
        dtype.name,
        channels_of(shape),
        index,
        path.parent.name,
        file_metadata=read_metadata(path),
    )
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
    # for the whole run, a second writer of the same file or folder (any command) is refused
    hold(output_location(params.path))
    if writes_video(items, params.path):
        return write_videos(items, params)
    kind = output_format(items, params)
    if kind == "ome-zarr":
        return write_ome(
            items, params.path, params.overwrite, params.restart, params.levels, params.downsample
        )
    items = [in_source_units(item) for item in items]
    if kind == "zarr":
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
        kept = item.meta.file_metadata if params.metadata else None
        record = provenance_of(item) if params.metadata else None
        tasks.append(
            task(
                write_one,
                item.data,
                str(target),
                params.overwrite,
                kept,
                record,
                params.quality,
                name=f"write-{item.meta.name}",
            )
        )
    return tasks


def output_format(items: list[ImageItem], params: WriteParams) -> str:
    """The format written: as asked, or ome-zarr / zarr / files from the path and the inputs."""
    zarr_path = is_zarr_path(params.path)
    if params.format in ("zarr", "ome-zarr") and not zarr_path:
        raise ImageIOError(f"{params.path}: format {params.format} needs a path with a .zarr part")
    if params.format != "auto":
        return params.format
    if zarr_path:
        return "ome-zarr" if items and all(i.meta.ome is not None for i in items) else "zarr"
    return "files"


def in_source_units(item: ImageItem) -> ImageItem:
    """An image read from OME-Zarr back in its input's units and dtype; any other image as it is."""
    ome = item.meta.ome
    if ome is None:
        return item
    data = restore(item.data, ome.windows, ome.dtype)
    return replace(item, data=data, meta=replace(item.meta, dtype=ome.dtype, ome=None))


def output_path(pattern: str, meta: ImageMeta) -> Path:
    """The file ``pattern`` names for an image."""
    ext = Path(meta.source).suffix.lstrip(".") if meta.source else "png"
    return Path(
        pattern.format(name=meta.name, index=meta.index, parent=meta.parent, ext=ext, frame=0)
    )


def write_one(
    array: np.ndarray,
    path: str,
    overwrite: bool,
    metadata: ImageMetadata | None = None,
    provenance: dict[str, Any] | None = None,
    quality: int | None = None,
) -> str:
    """Write one image atomically (temp file + rename), keeping bit depth, alpha and metadata."""
    written = write_image(
        path,
        np.asarray(array),
        overwrite=overwrite,
        metadata=metadata,
        provenance=provenance,
        quality=quality,
    )
    return str(written)
