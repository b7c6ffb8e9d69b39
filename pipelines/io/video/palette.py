"""Animated GIF outputs: the lossless segments transcoded at the join, with a palette per frame.

GIF holds 256 colours per frame and no other codec, so a GIF output's segments are encoded
losslessly (FFV1, like any other segment job, so the job resumes the same way) and the join
decodes them in order and encodes GIF: each frame gets its own palette (FFmpeg's
``palettegen`` in single-frame mode, then ``paletteuse`` with error diffusion), which keeps far
more of the upscaled detail than one palette for the whole clip. Transparency is kept as GIF
keeps it (one palette entry; pixels under half opacity become transparent). Timestamps become
GIF's hundredths of a second, each frame at least one hundredth after the one before; a GIF
source's loop count is kept (any other source loops forever, as animated GIFs mostly do); the
display rotation is applied to the pixels, since GIF has no rotation tag. GIF holds no sound,
subtitles or metadata: a source's other streams are left out with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.io.video.errors import VideoError, describe_av_error
from pipelines.io.video.index import FrameIndex
from pipelines.io.video.join import Segment
from pipelines.io.video.probe import VideoInfo
from pipelines.io.video.settings import Encoding

log = logging.getLogger(__name__)

GIF_TIME_BASE = Fraction(1, 100)
"""GIF's frame delays are whole hundredths of a second."""

DITHER = "sierra2_4a"
"""``paletteuse``'s error diffusion (FFmpeg's default): fine detail without a visible pattern."""


def write_gif(
    target: str | Path,
    encoding: Encoding,
    segments: Sequence[Segment],
    timeline: FrameIndex,
    source: VideoInfo | None,
    rotation: int = 0,
) -> None:
    """Write the GIF ``target`` from the lossless ``segments`` (see the module docstring)."""
    import av

    if source is not None and _other_streams(source):
        log.warning("%s: GIF holds no sound, subtitles or data; they are left out", target)
    turns = round(rotation / 90) % 4
    width, height = encoding.width, encoding.height
    if turns % 2:
        width, height = height, width
    stamps = gif_stamps(timeline)
    try:
        options = {"loop": str(source_loop(source))}
        with av.open(str(target), "w", format="gif", options=options) as out:
            stream = out.add_stream("gif")
            stream.width, stream.height, stream.pix_fmt = width, height, "pal8"
            stream.time_base = stream.codec_context.time_base = GIF_TIME_BASE
            graph = _palette_graph(width, height, encoding.keeps_alpha)
            durations = iter(stamps[1:] - stamps[:-1]) if len(stamps) > 1 else iter(())
            last = max(1, round(float(timeline.durations[-1] * timeline.time_base) * 100))
            for n, frame in enumerate(_frames(segments, turns, encoding.keeps_alpha)):
                frame.pts, frame.time_base = int(stamps[n]), GIF_TIME_BASE
                graph.push(frame)
                for packet in _encoded(graph, stream):
                    packet.duration = int(next(durations, last))
                    out.mux(packet)
            graph.push(None)
            for packet in (*_encoded(graph, stream), *stream.encode()):
                packet.duration = int(next(durations, last))
                out.mux(packet)
    except av.FFmpegError as exc:
        raise VideoError(f"{target}: writing the GIF failed ({describe_av_error(exc)})") from None


def gif_stamps(timeline: FrameIndex) -> np.ndarray:
    """Each frame's time in hundredths of a second from the first, strictly increasing."""
    seconds = (timeline.pts - timeline.pts[0]).astype(np.float64) * float(timeline.time_base)
    stamps = np.rint(seconds * 100).astype(np.int64)
    for n in range(1, len(stamps)):  # frames closer than 1/100 s apart move later by the rest
        stamps[n] = max(stamps[n], stamps[n - 1] + 1)
    return stamps


def source_loop(source: VideoInfo | None) -> int:
    """The GIF muxer's ``loop`` for this source: a GIF's own count (-1: played once, 0: forever,
    N: N more times, as its NETSCAPE block says), else 0."""
    if source is None or source.container != "gif":
        return 0
    from PIL import Image

    try:
        with Image.open(source.path) as image:
            loop = image.info.get("loop")
    except (OSError, ValueError, SyntaxError):
        return 0
    return -1 if loop is None else int(loop)


def _other_streams(source: VideoInfo) -> bool:
    """True when the source has streams other than its video (sound, subtitles, data)."""
    return any(s.kind in ("audio", "subtitle", "data") and not s.internal for s in source.streams)


def _frames(segments: Sequence[Segment], turns: int, alpha: bool) -> Iterator[Any]:
    """Every frame of the segments in order, as RGB(A) frames turned upright."""
    import av

    layout = "rgba" if alpha else "rgb24"
    for segment in segments:
        with av.open(segment.path) as container:
            count = 0
            for frame in container.decode(video=0):
                pixels: np.ndarray = frame.to_ndarray(format=layout)
                if turns:
                    pixels = np.ascontiguousarray(np.rot90(pixels, turns))
                count += 1
                yield av.VideoFrame.from_ndarray(pixels, format=layout)
        if count != segment.stop - segment.start:
            raise VideoError(
                f"{segment.path}: holds {count} frames, expected {segment.stop - segment.start}"
            )


def _palette_graph(width: int, height: int, alpha: bool) -> Any:
    """split -> palettegen (one palette per frame) -> paletteuse, as an FFmpeg filter graph."""
    import av
    import av.filter

    graph = av.filter.Graph()
    layout = av.VideoFormat("rgba" if alpha else "rgb24")
    source = graph.add_buffer(width=width, height=height, format=layout, time_base=GIF_TIME_BASE)
    split = graph.add("split")
    reserve = 1 if alpha else 0
    palette = graph.add("palettegen", f"stats_mode=single:reserve_transparent={reserve}")
    use = graph.add("paletteuse", f"new=1:dither={DITHER}")
    sink = graph.add("buffersink")
    source.link_to(split)
    split.link_to(use, 0, 0)
    split.link_to(palette, 1, 0)
    palette.link_to(use, 0, 1)
    use.link_to(sink)
    graph.configure()
    return graph


def _encoded(graph: Any, stream: Any) -> Iterator[Any]:
    """The packets of every frame the graph has ready."""
    import av

    while True:
        try:
            frame = graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return
        frame.time_base = GIF_TIME_BASE
        yield from stream.encode(frame)
