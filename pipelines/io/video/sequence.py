"""A folder or a glob of numbered images read as one video at a given frame rate.

Frames are the image files in natural order (``f2.png`` before ``f10.png``), shown every
``1/fps`` seconds; all must have the same size, channels and bit depth. Grey frames are read as
RGB. The item is chunked like a video (segments of whole frames), so per-frame stages and a video
output treat it as one.
"""

from __future__ import annotations

import glob
import os
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from pipelines.io.items import ImageMeta
from pipelines.io.video.errors import VideoError
from pipelines.io.video.index import FrameIndex
from pipelines.io.video.lazy import VideoItem, VideoMeta, default_segment_frames
from pipelines.io.video.pixels import conversion
from pipelines.io.video.probe import ColourTags


def sequence_files(pattern: str) -> list[Path]:
    """The image files of a folder or glob, in natural order."""
    from pipelines.io.images import IMAGE_SUFFIXES

    path = Path(pattern)
    if path.is_dir():
        found = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        found = [Path(p) for p in glob.glob(pattern) if Path(p).is_file()]
    if not found:
        raise VideoError(f"{pattern}: no image files to read as a sequence")
    return sorted(found, key=natural_key)


def natural_key(path: Path) -> list[object]:
    """Sort key putting frame2 before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def sequence_item(
    pattern: str,
    fps: float,
    position: int = 0,
    segment_frames: int | None = None,
    max_pixels: int | None = None,
) -> VideoItem:
    """The images of ``pattern`` as one lazy video item at ``fps`` frames per second."""
    import dask.array as da

    from pipelines.io.images import DEFAULT_MAX_PIXELS
    from pipelines.runner.tasks import task

    files = sequence_files(pattern)
    first = _load(str(files[0]), max_pixels or DEFAULT_MAX_PIXELS)
    height, width, channels = first.shape
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    if rate <= 0:
        raise VideoError(f"{pattern}: fps must be positive, not {fps}")
    count = len(files)
    timeline = FrameIndex(
        np.arange(count, dtype=np.int64),
        np.ones(count, dtype=np.int64),
        np.arange(count, dtype=np.int64),
        1 / rate,
    )
    length = segment_frames or default_segment_frames(height, width, channels, first.dtype.itemsize)
    pieces = []
    for start in range(0, count, length):
        names = [str(f) for f in files[start : start + length]]
        chunk = task(
            load_images,
            names,
            first.shape,
            first.dtype.name,
            max_pixels or DEFAULT_MAX_PIXELS,
            name="frames",
        )
        pieces.append(da.from_delayed(chunk, (len(names), *first.shape), dtype=first.dtype))
    data = da.concatenate(pieces, axis=0)
    base = Path(pattern) if Path(pattern).is_dir() else files[0].parent
    meta = ImageMeta(
        base.name or "frames", str(pattern), first.dtype.name, channels, position, base.parent.name
    )
    depth = 8 if first.dtype == np.uint8 else 16
    video = VideoMeta(
        timeline, None, rate, conversion(ColourTags(), width, height, rgb_source=True), depth
    )
    return VideoItem(data, meta, video)


def _load(path: str, max_pixels: int) -> np.ndarray:
    from pipelines.io.images import read_image

    image = read_image(path, max_pixels)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image


def load_images(
    paths: list[str], shape: tuple[int, ...], dtype: str, max_pixels: int
) -> np.ndarray:
    """The frames ``paths`` as a (T, H, W, C) array; every one must match the first frame."""
    frames = []
    for path in paths:
        image = _load(path, max_pixels)
        if image.shape != tuple(shape) or image.dtype != np.dtype(dtype):
            raise VideoError(
                f"{path}: {image.dtype} {image.shape} does not match the sequence's first frame "
                f"({np.dtype(dtype)} {tuple(shape)})"
            )
        frames.append(image)
    return np.stack(frames)


def is_sequence_pattern(pattern: str) -> bool:
    """True for a folder or a glob (what ``fps`` turns into a video)."""
    return os.path.isdir(pattern) or glob.has_magic(pattern)
