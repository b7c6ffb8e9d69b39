"""Encoding RGB(A) arrays with given timestamps into a video file.

:class:`FrameWriter` opens one encoder with a resolved :class:`~pipelines.io.video.settings.Encoding`
and writes frames with the timestamps it is given (in the source's time base), so variable frame
rates survive; segment jobs use one writer per segment, which makes every segment start with a
keyframe and reference nothing outside itself (a closed GOP). :func:`write_video` writes a
whole array at once, atomically.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.io.atomic import atomic_target
from pipelines.io.video.errors import VideoError, describe_av_error
from pipelines.io.video.pixels import Conversion, array_to_frame, conversion
from pipelines.io.video.probe import ColourTags
from pipelines.io.video.settings import EncodeSettings, Encoding, resolve


class FrameWriter:
    """An open encoder writing frames into ``path`` (container chosen by ``container_format``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        encoding: Encoding,
        conv: Conversion,
        time_base: Fraction,
        frame_rate: Fraction | None = None,
        sample_aspect_ratio: Fraction | None = None,
        container_format: str | None = None,
    ) -> None:
        import av

        self.path = str(path)
        self.encoding, self.conv, self.time_base = encoding, conv, time_base
        try:
            self.container = av.open(self.path, "w", format=container_format)
            stream: Any = self.container.add_stream(encoding.codec)
            stream.time_base = time_base
            ctx: Any = stream.codec_context
            ctx.width, ctx.height, ctx.pix_fmt = encoding.width, encoding.height, encoding.pix_fmt
            ctx.time_base = time_base
            if frame_rate:
                ctx.framerate = frame_rate
            if sample_aspect_ratio:
                ctx.sample_aspect_ratio = sample_aspect_ratio
            ctx.color_primaries = conv.tags.primaries
            ctx.color_trc = conv.tags.transfer
            ctx.colorspace = 0 if _rgb(encoding.pix_fmt) else conv.tags.matrix
            ctx.color_range = 2 if _rgb(encoding.pix_fmt) else conv.range
            ctx.thread_count = encoding.threads
            ctx.options = dict(encoding.options)
        except (av.FFmpegError, ValueError) as exc:
            self._abort()
            raise VideoError(
                f"{self.path}: cannot set up the {encoding.codec} encoder ({describe_av_error(exc)})"
            ) from None
        self.stream: Any = stream
        self.frames = 0

    def write(self, array: np.ndarray, pts: int) -> None:
        """Encode one (H, W, C) frame shown at ``pts`` (in ``time_base`` units)."""
        import av

        e = self.encoding
        frame = array_to_frame(array[: e.height, : e.width], e.pix_fmt, self.conv)
        frame.pts = int(pts)
        frame.time_base = self.time_base
        try:
            self.container.mux(self.stream.encode(frame))
        except (av.FFmpegError, ValueError) as exc:
            self._abort()
            raise VideoError(
                f"{self.path}: the {e.codec} encoder refused frame {self.frames} "
                f"({describe_av_error(exc)})"
            ) from None
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        import av

        try:
            self.container.mux(self.stream.encode(None))
            self.container.close()
        except (av.FFmpegError, ValueError) as exc:
            self._abort()
            raise VideoError(
                f"{self.path}: finishing the video failed ({describe_av_error(exc)})"
            ) from None

    def _abort(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            with contextlib.suppress(Exception):  # the first error is the one reported
                container.close()


def _rgb(pix_fmt: str) -> bool:
    from pipelines.io.video.pixels import is_rgb_format

    return is_rgb_format(pix_fmt)


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray | Iterable[np.ndarray],
    settings: EncodeSettings | None = None,
    *,
    fps: Fraction | float = 24,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    colour: ColourTags | None = None,
    overwrite: bool = False,
) -> Path:
    """Encode (T, H, W, C) uint8/uint16 frames into ``path`` atomically (temporary name, then rename).

    Frames are shown at ``pts`` (in ``time_base`` units) when given, else every ``1/fps`` seconds.
    ``colour`` tags the frames (default: unspecified, so BT.601/BT.709 by size, limited range).
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise VideoError(f"{target}: output exists (pass overwrite to replace it)")
    items = iter(frames)
    try:
        first = np.asarray(next(items))
    except StopIteration:
        raise VideoError(f"{target}: no frames to write") from None
    if first.ndim != 3 or first.shape[2] not in (3, 4) or first.dtype not in (np.uint8, np.uint16):
        raise VideoError(
            f"{target}: frames must be (H, W, 3 or 4) uint8 or uint16 arrays, got {first.dtype} {first.shape}"
        )
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    base = time_base or (1 / rate)
    height, width = first.shape[:2]
    depth = 8 if first.dtype == np.uint8 else 16
    encoding = resolve(
        settings or EncodeSettings(), target, width, height, depth, first.shape[2] == 4
    )
    conv = conversion(colour or ColourTags(), width, height, rgb_source=False)
    with atomic_target(target) as tmp:
        writer = FrameWriter(tmp, encoding, conv, base, rate, container_format=encoding.container)
        for n, frame in enumerate(itertools.chain([first], items)):
            stamp = pts[n] if pts is not None else round(n / (rate * base))
            writer.write(np.asarray(frame), int(stamp))
        writer.close()
    return target
