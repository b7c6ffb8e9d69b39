"""Videos in ``builtin.read`` and ``builtin.write``: the hooks :mod:`pipelines.builtin.files` calls.

Reading: a file that is not an image is probed as a video (by content) and becomes one
:class:`~pipelines.io.video.lazy.VideoItem`, a (T, H, W, C) Dask array chunked by segments of
frames; a folder or glob with ``fps`` set is an image sequence read as one video. Writing a
video item: to a video suffix, a resumable segment job (each chunk encoded into a segment, the
segments joined with the source's sound, subtitles, chapters and metadata); to an image pattern
with ``{frame}``, one image file per frame (turned upright by the video's display rotation).
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.builtin.provenance import provenance_of
from pipelines.io.images import IMAGE_SUFFIXES, is_still_image, write_image
from pipelines.io.items import ImageItem
from pipelines.io.video.errors import VideoError
from pipelines.io.video.probe import VIDEO_SUFFIXES
from pipelines.runner.outputs import FollowUp, OutputStatus
from pipelines.runner.tasks import task


def is_video_path(path: Path) -> bool:
    """True for a file ``builtin.read`` probes as a video: any file without an image suffix,
    but a GIF of one frame (an image)."""
    return path.suffix.lower() not in IMAGE_SUFFIXES and not is_still_image(path)


def folder_videos(pattern: str) -> list[Path]:
    """The video files (by suffix) in a folder, searched recursively; [] for anything else."""
    folder = Path(pattern)
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    )


def read_video(path: Path, position: int, params: Any) -> ImageItem:
    """One video file as a lazy (T, H, W, C) item."""
    from pipelines.io.video.lazy import video_item

    if params.chunk is not None:
        raise VideoError(
            f"{path}: chunk (a block side in pixels) does not apply to videos, whose chunks are "
            "whole frames; set segment_frames"
        )
    item = video_item(path, position, params.segment_frames, params.keep_damaged)
    height, width = item.data.shape[1:3]
    if height * width > params.max_pixels:
        raise VideoError(
            f"{path}: frames are {width}x{height} = {width * height} pixels, over the limit of "
            f"{params.max_pixels} (raise max_pixels if the file is trusted)"
        )
    return item


def read_sequence(pattern: str, position: int, params: Any) -> ImageItem:
    """A folder or glob of numbered images as one video at ``params.fps``."""
    from pipelines.io.video.sequence import is_sequence_pattern, sequence_item

    if not is_sequence_pattern(pattern):
        raise VideoError(
            f"{pattern}: fps reads a folder or a glob of numbered images as a video; "
            "a single file is not a sequence"
        )
    return sequence_item(pattern, params.fps, position, params.segment_frames, params.max_pixels)


# --------------------------------------------------------------------------- write


def writes_video(items: Sequence[ImageItem], path: str) -> bool:
    """True when ``builtin.write`` should take the video route: video items, or a video suffix."""
    from pipelines.io.video.lazy import is_video_item

    return any(is_video_item(i) for i in items) or Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoStatus(OutputStatus):
    """A video output's segments already done before this run, and the frames they hold."""

    frames: int = 0
    reused_frames: int = 0

    @property
    def complete(self) -> bool:
        return False  # the join is always left to do: a finished video is not a resumable job

    def describe(self) -> str:
        from pipelines.io.video.transform import describe_state

        return describe_state(self.path, self.total, self.done, self.reused_frames, self.frames)


def write_videos(items: Sequence[ImageItem], params: Any) -> list[Any]:
    """Write tasks for video items: a video file each, or one image per frame."""
    from pipelines.io.video.lazy import is_video_item

    stills = [i for i in items if not is_video_item(i)]
    if stills:
        raise VideoError(
            f"{params.path}: {stills[0].meta.source or stills[0].meta.name} is an image, not a video; "
            "a video output needs video input (a video file, or image files read with fps)"
        )
    suffix = Path(params.path).suffix.lower()
    if suffix == ".zarr" or any(part.endswith(".zarr") for part in Path(params.path).parts):
        raise VideoError(
            f"{params.path}: videos are written to a video file (.mp4, .mkv, .mov, .webm ...) or as "
            "frames ({frame} in an image path), not to Zarr"
        )
    fields = {f for _, f, _, _ in string.Formatter().parse(params.path) if f}
    if suffix in IMAGE_SUFFIXES or "{ext}" in params.path:
        if "frame" not in fields:
            raise VideoError(
                f"{params.path}: a video has many frames; put {{frame}} in an image path "
                "(e.g. frames/{name}_{frame:06d}.png) or write a video suffix such as .mp4"
            )
        return [t for item in items for t in frame_tasks(item, params)]
    if "frame" in fields:
        raise VideoError(f"{params.path}: {{frame}} names image files, not a video file")
    targets: dict[Path, str] = {}
    tasks: list[Any] = []
    for item in items:
        m = item.meta
        target = Path(params.path.format(name=m.name, index=m.index, parent=m.parent, ext=""))
        if target in targets:
            raise VideoError(
                f"{target}: both {targets[target]} and {m.source or m.name} would be written here; "
                "put {name} or {index} in the path"
            )
        targets[target] = m.source or m.name
        tasks.extend(video_tasks(item, target, params))
    return tasks


def video_tasks(item: Any, target: Path, params: Any) -> list[Any]:
    """The segment tasks of one video output, its status line, and the join as a follow-up."""
    from pipelines.io.video.output import finish_output, plan_output
    from pipelines.io.video.settings import resolve

    video = item.video
    frames, height, width, channels = item.data.shape
    if math.isnan(height) or math.isnan(width):
        raise VideoError(
            f"{target}: the frame size is known only once the frames are computed (a resize by width or "
            "height); a video output needs it beforehand: resize by scale instead"
        )
    encoding = resolve(
        params.encode_settings(), target, int(width), int(height), video.bit_depth, channels == 4
    )
    bounds = np.cumsum((0, *item.data.chunks[0]))
    plan = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    fingerprint = {
        "source": _identity(item),
        "history": [dict(r) for r in item.meta.history],
        "shape": [int(frames), int(height), int(width), int(channels)],
    }
    output, state = plan_output(
        target,
        encoding,
        video.conv,
        video.timeline,
        plan,
        fingerprint,
        source=video.source,
        frame_rate=video.frame_rate,
        overwrite=params.overwrite,
        restart=params.restart,
        keep_damaged=video.keep_damaged,
    )
    status = VideoStatus(
        str(target),
        len(plan),
        len(state.done),
        frames=int(frames),
        reused_frames=state.reused_frames,
    )
    blocks = item.data.to_delayed(optimize_graph=True).reshape(-1)
    tasks: list[Any] = [status]
    for k, (start, stop) in enumerate(plan):
        if k not in state.done:
            stamps = video.timeline.pts[start:stop].copy()
            tasks.append(task(encode_chunk, blocks[k], output.sink, k, stamps, name="segment"))
    tags = {"provenance": json.dumps(provenance_of(item))} if params.metadata else {}
    join = FollowUp(f"join {target}", lambda: [task(finish_output, output, tags, name="join")])
    tasks.append(join)
    return tasks


def _identity(item: Any) -> dict[str, Any]:
    video = item.video
    if video.source is not None:
        from pipelines.io.video.transform import source_identity

        return source_identity(video.source, video.timeline)
    return {
        "sequence": item.meta.source,
        "frames": video.frames,
        "timeline": video.timeline.digest(),
    }


def encode_chunk(frames: np.ndarray, sink: Any, k: int, stamps: np.ndarray) -> None:
    """Encode one computed chunk of frames as segment ``k`` (a task; returns nothing to list)."""
    from pipelines.io.video.output import write_segment

    write_segment(sink, k, [(np.asarray(frames), stamps)])


def frame_tasks(item: Any, params: Any) -> list[Any]:
    """One task per chunk writing its frames as images named by the pattern's ``{frame}``."""
    m = item.meta
    frames = int(item.data.shape[0])
    paths = [
        Path(params.path.format(name=m.name, index=m.index, parent=m.parent, ext="png", frame=n))
        for n in range(frames)
    ]
    if len(set(paths)) != len(paths):
        raise VideoError(f"{params.path}: two frames of {m.name} would get the same file name")
    existing = next((p for p in paths if p.exists()), None)
    if existing is not None and not params.overwrite:
        raise VideoError(f"{existing}: output exists (set overwrite: true to replace it)")
    blocks = item.data.to_delayed(optimize_graph=True).reshape(-1)
    bounds = np.cumsum((0, *item.data.chunks[0]))
    return [
        task(
            write_frames,
            blocks[k],
            [str(p) for p in paths[bounds[k] : bounds[k + 1]]],
            item.video.rotation,
            params.overwrite,
            params.quality,
            name="frames",
        )
        for k in range(len(blocks))
    ]


def write_frames(
    frames: np.ndarray,
    paths: list[str],
    rotation: int,
    overwrite: bool,
    quality: int | None = None,
) -> list[str]:
    """Write each frame as an image (atomic), turned by the display rotation; the paths written."""
    turns = round(rotation / 90) % 4
    for frame, path in zip(np.asarray(frames), paths, strict=True):
        frame = np.rot90(frame, turns) if turns else frame
        write_image(path, frame, overwrite=overwrite, quality=quality)
    return paths
