"""Frame-accurate decoding of a frame range [start, stop) to RGB(A) arrays.

The decoder seeks to the last keyframe at or before ``start`` (from the frame index), decodes
from there and drops the frames before ``start``; frames are matched to the index by their
timestamps, so the range is exact whatever the container's seek precision (a container that
seeks past the keyframe is read again from its start). A frame that fails to decode is an error
naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from pipelines.io.video.errors import VideoError, describe_av_error
from pipelines.io.video.index import FrameIndex, index_frames
from pipelines.io.video.pixels import Conversion, array_format, conversion, is_rgb_format
from pipelines.io.video.probe import VideoInfo, decoder_for, probe_video


def source_conversion(info: VideoInfo) -> Conversion:
    """How ``info``'s frames are converted to RGB (and back when written)."""
    return conversion(info.colour, info.width, info.height, is_rgb_format(info.pix_fmt))


def frame_format(info: VideoInfo) -> str:
    """The packed array format frames of ``info`` are read in (rgb24, rgba, rgb48le, rgba64le)."""
    return array_format(info.dtype, info.channels)


def iter_frames(
    info: VideoInfo, index: FrameIndex, start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """Frames ``start`` to ``stop - 1`` as (H, W, C) arrays, decoded from the keyframe before ``start``."""
    from pipelines.io.video.pixels import frame_to_array

    stop = len(index) if stop is None else stop
    if not 0 <= start <= stop <= len(index):
        raise VideoError(
            f"{info.path}: frames [{index.first + start}, {index.first + stop}) are outside the "
            f"video's frames [{index.first}, {index.first + len(index)})"
        )
    if start == stop:
        return
    fmt, conv = frame_format(info), source_conversion(info)
    wanted = index.pts[start:stop]
    for position, frame in _decoded(info, index, start, wanted):
        array = frame_to_array(frame, fmt, conv)
        if array.shape[:2] != (info.height, info.width):
            raise VideoError(
                f"{info.path}: frame {index.first + start + position} is {array.shape[1]}x{array.shape[0]}, but the "
                f"video starts at {info.width}x{info.height}; size changes inside a video are not supported"
            )
        yield array


def _decoded(
    info: VideoInfo, index: FrameIndex, start: int, wanted: np.ndarray
) -> Iterator[tuple[int, Any]]:
    """(position in ``wanted``, frame) for every wanted timestamp, in order."""
    import av

    keyframe = index.keyframe_before(start)
    for attempt in ("seek", "from the start"):
        with av.open(info.path, metadata_errors="ignore") as container:
            stream = container.streams[info.video_index]
            if attempt == "seek" and keyframe > 0:
                container.seek(int(index.pts[keyframe]), stream=stream, backward=True)
            ctx = decoder_for(stream, info.decoder)
            found = 0
            overshot = False
            for frame in _frames(container, stream, ctx, info, index.first + start, wanted):
                if frame.pts is None:
                    raise VideoError(
                        f"{info.path}: the decoder gave a frame without a timestamp near frame "
                        f"{index.first + start + found}"
                    )
                if found == 0 and frame.pts > wanted[0]:
                    overshot = True  # the container seeked past our keyframe
                    break
                if frame.pts < wanted[found]:
                    continue
                if frame.pts != wanted[found]:
                    raise VideoError(
                        f"{info.path}: frame {index.first + start + found} "
                        f"(t={index.seconds(start + found):.3f} s) "
                        f"could not be decoded (next decoded timestamp {frame.pts})"
                    )
                yield found, frame
                found += 1
                if found == wanted.size:
                    return
            if not overshot:
                missing = start + found
                raise VideoError(
                    f"{info.path}: frame {index.first + missing} (t={index.seconds(missing):.3f} s) could not be "
                    "decoded: the stream ended before it"
                )
    raise VideoError(f"{info.path}: frame {index.first + start} could not be reached by decoding")


def _frames(
    container: Any, stream: Any, ctx: Any, info: VideoInfo, start: int, wanted: np.ndarray
) -> Iterator[Any]:
    """Decoded frames of ``stream`` in presentation order; errors name the first wanted frame."""
    import av

    try:
        for packet in container.demux(stream):
            yield from ctx.decode(packet)
    except av.FFmpegError as exc:
        raise VideoError(
            f"{info.path}: cannot decode the frames from {start} on "
            f"(t={float(wanted[0] * info.time_base):.3f} s): "
            f"{describe_av_error(exc)}"
        ) from None


def read_frames(
    path: str | os.PathLike[str],
    start: int = 0,
    stop: int | None = None,
    *,
    keep_damaged: bool = False,
) -> np.ndarray:
    """Frames [start, stop) of the video at ``path`` as a (T, H, W, C) uint8 or uint16 array.

    RGB, or RGBA when the video has alpha; uint16 when it has more than 8 bits per sample.
    Probes and indexes the file first; use :func:`iter_frames` with a kept index for many reads.
    """
    info = probe_video(path)
    index = index_frames(info, keep_damaged=keep_damaged)
    frames = list(iter_frames(info, index, start, stop))
    if not frames:
        return np.zeros((0, info.height, info.width, info.channels), dtype=info.dtype)
    return np.stack(frames)
