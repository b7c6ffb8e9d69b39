"""A video as one lazy pipeline item: a (T, H, W, C) Dask array chunked by segments of whole frames.

Each chunk is one task that decodes its frame range (from the keyframe before it), so the
pipeline maps per-frame stages over chunks in parallel and a video sink encodes each chunk into
a segment of its own. :class:`VideoItem` is an :class:`~pipelines.io.items.ImageItem` that also
carries the frame timeline and the source (for the sound, subtitles and chapters a video output
copies); transforms keep it (``with_data`` keeps the item's class).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.io.items import ImageItem, ImageMeta
from pipelines.io.video.decode import iter_frames, source_conversion
from pipelines.io.video.errors import VideoError
from pipelines.io.video.index import FrameIndex, index_frames
from pipelines.io.video.pixels import Conversion
from pipelines.io.video.probe import VideoInfo, probe_video
from pipelines.io.video.segments import plan_segments

CHUNK_BYTES = 32 << 20
"""Input bytes per chunk that set the default segment length of a pipeline video (8 to 120 frames)."""


@dataclass(frozen=True, eq=False)
class VideoMeta:
    """What a video item carries besides its frames: their timing, the source, the colour conversion."""

    timeline: FrameIndex
    source: VideoInfo | None
    """The source video file (None for an image sequence)."""
    frame_rate: Fraction | None
    conv: Conversion
    bit_depth: int
    """Bits per sample of the source (8, 10, 12, 16): what a video output keeps."""
    keep_damaged: bool = False
    rotation: int = 0

    @property
    def frames(self) -> int:
        return len(self.timeline)


@dataclass(frozen=True)
class VideoItem(ImageItem):
    """A pipeline item whose ``data`` is (T, H, W, C), chunked along T by segments of frames."""

    video: VideoMeta


def default_segment_frames(height: int, width: int, channels: int, itemsize: int) -> int:
    """Frames per chunk: about :data:`CHUNK_BYTES` of input, at least 8 and at most 120."""
    frame = max(1, height * width * channels * itemsize)
    return int(max(8, min(120, CHUNK_BYTES // frame)))


def video_item(
    path: str | os.PathLike[str],
    position: int = 0,
    segment_frames: int | None = None,
    keep_damaged: bool = False,
) -> VideoItem:
    """The video at ``path`` as a lazy item (probed and indexed now; frames decoded when computed)."""
    import dask.array as da

    from pipelines.runner.tasks import task

    info = probe_video(path)
    timeline = index_frames(info, keep_damaged=keep_damaged)
    itemsize = np.dtype(info.dtype).itemsize
    length = segment_frames or default_segment_frames(
        info.height, info.width, info.channels, itemsize
    )
    pieces = []
    for start, stop in plan_segments(timeline, length):
        chunk = task(load_frames, info, timeline.window(start, stop), start, stop, name="decode")
        shape = (stop - start, info.height, info.width, info.channels)
        pieces.append(da.from_delayed(chunk, shape, dtype=info.dtype))
    data = da.concatenate(pieces, axis=0)
    p = Path(path)
    meta = ImageMeta(p.stem, str(p), info.dtype, info.channels, position, p.parent.name)
    video = VideoMeta(
        timeline,
        info,
        info.frame_rate,
        source_conversion(info),
        info.bit_depth,
        keep_damaged,
        info.rotation,
    )
    return VideoItem(data, meta, video)


def load_frames(info: VideoInfo, window: FrameIndex, start: int, stop: int) -> np.ndarray:
    """Frames [start, stop) as a (T, H, W, C) array (one chunk's task)."""
    frames = list(iter_frames(info, window, start - window.first, stop - window.first))
    if len(frames) != stop - start:
        raise VideoError(f"{info.path}: decoded {len(frames)} frames of [{start}, {stop})")
    return np.stack(frames)


def is_video_item(item: Any) -> bool:
    """True for items whose data is a (T, H, W, C) video."""
    return isinstance(item, VideoItem)
