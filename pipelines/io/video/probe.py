"""What a video file holds, found by opening it with FFmpeg (its content, not its suffix).

:func:`probe_video` reads the container header and decodes the first frame of the main video
stream (the first one that is not cover art), so that the pixel format, colour tags and display
rotation are the ones the decoder really produces. The exact frame count and every timestamp
come from :mod:`pipelines.io.video.index`, which reads every packet.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipelines.io.video.errors import VideoError, describe_av_error

VIDEO_SUFFIXES = (
    ".mp4",
    ".m4v",
    ".mkv",
    ".mov",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".ts",
    ".m2ts",
    ".mts",
    ".wmv",
    ".flv",
    ".ogv",
    ".3gp",
    ".mxf",
    ".nut",
    ".gif",
)
"""Suffixes taken as videos when a folder or glob is expanded (a single file is probed by content)."""

_STILL_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "tiff_pipe", "bmp_pipe")
_MATRIX_NAMES = {
    0: "rgb",
    1: "bt709",
    2: "unspecified",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "ycgco",
    9: "bt2020nc",
    10: "bt2020c",
}
_RANGE_NAMES = {0: "unspecified", 1: "tv", 2: "pc"}


@dataclass(frozen=True)
class ColourTags:
    """The colour description a video carries (FFmpeg's enum values; see :meth:`names`).

    ``matrix`` is how Y'CbCr relates to R'G'B' (AVColorSpace), ``range`` is 1 for limited (tv) and
    2 for full (pc) range, 0 when unspecified. ``primaries`` and ``transfer`` are kept as tags:
    frames are never converted between gamuts or transfer curves.
    """

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2
    range: int = 0

    def names(self) -> dict[str, str]:
        """The tags as FFmpeg names (``bt709``, ``smpte2084``, ``tv`` ...)."""
        from av.video.reformatter import ColorPrimaries, ColorTrc

        def name(enum: Any, value: int) -> str:
            try:
                return str(enum(value).name).lower()
            except ValueError:
                return str(value)

        return {
            "primaries": name(ColorPrimaries, self.primaries),
            "transfer": name(ColorTrc, self.transfer),
            "matrix": _MATRIX_NAMES.get(self.matrix, str(self.matrix)),
            "range": _RANGE_NAMES.get(self.range, str(self.range)),
        }


@dataclass(frozen=True)
class StreamInfo:
    """One stream of the container: what it is and what is kept of it when a video is written."""

    index: int
    kind: str
    """video, audio, subtitle, data or attachment."""
    codec: str | None
    time_base: Fraction | None
    language: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    disposition: int = 0
    internal: bool = False
    """A stream the demuxer keeps for itself (an MP4 chapter track): never copied as a stream."""


@dataclass(frozen=True)
class Chapter:
    """A chapter: start and end in seconds (exact fractions) and its metadata (``title``)."""

    start: Fraction
    end: Fraction
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str | None:
        return self.metadata.get("title")


@dataclass(frozen=True)
class VideoInfo:
    """A video file's container, its main video stream and the other streams.

    Frames of the main stream are read as RGB (RGBA when ``has_alpha``), uint8 when
    ``bit_depth`` is 8 and uint16 above. ``rotation`` is the display rotation in degrees,
    counter-clockwise (a tag: frames are read as stored). ``frame_count`` is the header's
    figure when it has one (see :mod:`pipelines.io.video.index` for the exact count).
    """

    path: str
    container: str
    duration: float | None
    metadata: Mapping[str, str]
    chapters: tuple[Chapter, ...]
    streams: tuple[StreamInfo, ...]
    video_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    has_alpha: bool
    colour: ColourTags
    rotation: int
    frame_rate: Fraction | None
    time_base: Fraction
    frame_count: int | None
    sample_aspect_ratio: Fraction | None = None
    decoder: str | None = None
    """The decoder to use instead of FFmpeg's default (libvpx-vp9 for VP9 with alpha)."""

    @property
    def dtype(self) -> str:
        return "uint8" if self.bit_depth <= 8 else "uint16"

    @property
    def channels(self) -> int:
        return 4 if self.has_alpha else 3

    @property
    def video(self) -> StreamInfo:
        return self.streams[self.video_index]

    def others(self) -> tuple[StreamInfo, ...]:
        """The streams besides the main video stream that a written video copies."""
        return tuple(s for s in self.streams if s.index != self.video_index and not s.internal)


def is_video(path: str | os.PathLike[str]) -> bool:
    """True when FFmpeg opens ``path`` as a container with a video stream (not a still image)."""
    try:
        probe_video(path, decode=False)
    except VideoError:
        return False
    return True


def probe_video(path: str | os.PathLike[str], decode: bool = True) -> VideoInfo:
    """Describe the video at ``path``; :class:`VideoError` (one line naming it) if it is not one.

    With ``decode`` (the default) the first frame is decoded, which fixes the pixel format and
    rotation the frames really have and proves that the stream decodes.
    """
    import av

    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{p}: no such video file")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(
            f"{p}: not a video (FFmpeg cannot read it: {describe_av_error(exc)})"
        ) from None
    with container:
        name = container.format.name
        if name in _STILL_FORMATS or name.endswith("_pipe"):
            raise VideoError(f"{p}: a still image ({name}), not a video")
        streams = tuple(_stream_info(s) for s in container.streams)
        main = _main_video(container)
        if main is None:
            kinds = ", ".join(f"{s.kind} {s.codec or '?'}" for s in streams) or "none"
            raise VideoError(f"{p}: no video stream (streams: {kinds})")
        decoder = _special_decoder(main)
        frame = _first_frame(container, main, decoder, p) if decode else None
        ctx = main.codec_context
        pix_fmt = frame.format.name if frame is not None else (ctx.pix_fmt or "")
        if not pix_fmt:
            raise VideoError(f"{p}: the video stream's pixel format is unknown (codec {ctx.name})")
        source = frame if frame is not None else ctx
        colour = ColourTags(
            primaries=int(source.color_primaries),
            transfer=int(source.color_trc),
            matrix=int(source.colorspace),
            range=int(source.color_range),
        )
        return VideoInfo(
            path=str(p),
            container=name,
            duration=None if container.duration is None else container.duration / 1_000_000,
            metadata=dict(container.metadata),
            chapters=tuple(_chapters(container)),
            streams=streams,
            video_index=main.index,
            codec=ctx.name,
            width=int(frame.width if frame is not None else ctx.width),
            height=int(frame.height if frame is not None else ctx.height),
            pix_fmt=pix_fmt,
            bit_depth=bit_depth(pix_fmt),
            has_alpha=has_alpha(pix_fmt) or decoder is not None,
            colour=colour,
            rotation=int(round(frame.rotation)) if frame is not None else 0,
            frame_rate=main.average_rate or main.guessed_rate or None,
            time_base=main.time_base or Fraction(1, 1000),
            frame_count=int(main.frames) or None,
            sample_aspect_ratio=ctx.sample_aspect_ratio or None,
            decoder=decoder,
        )


def bit_depth(pix_fmt: str) -> int:
    """Bits per sample of a pixel format (8 for yuv420p, 10 for yuv420p10le ...)."""
    import av

    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def has_alpha(pix_fmt: str) -> bool:
    """True when the pixel format has an alpha plane (yuva420p, bgra, gbrap10le ...)."""
    import av

    return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)


def _main_video(container: Any) -> Any:
    """The first video stream that is not an attached picture (cover art), or None."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _special_decoder(stream: Any) -> str | None:
    """libvpx-vp9 for VP9 with an alpha channel (FFmpeg's own VP9 decoder drops alpha)."""
    alpha = str(stream.metadata.get("alpha_mode", stream.metadata.get("ALPHA_MODE", "0")))
    if stream.codec_context.name == "vp9" and alpha == "1":
        return "libvpx-vp9"
    return None


def decoder_for(stream: Any, name: str | None) -> Any:
    """The codec context that decodes ``stream``: its own, or the named decoder (libvpx-vp9 for alpha)."""
    import av

    if name is None:
        ctx = stream.codec_context
    else:
        ctx = av.CodecContext.create(name, "r")
        if stream.codec_context.extradata:
            ctx.extradata = stream.codec_context.extradata
    ctx.thread_type = "AUTO"
    return ctx


def _first_frame(container: Any, stream: Any, decoder: str | None, path: Path) -> Any:
    import av

    ctx = decoder_for(stream, decoder)
    try:
        for packet in container.demux(stream):
            for frame in ctx.decode(packet):
                return frame
    except av.FFmpegError as exc:
        raise VideoError(
            f"{path}: cannot decode the first frame of its video stream ({describe_av_error(exc)})"
        ) from None
    raise VideoError(f"{path}: its video stream has no decodable frame")


def _stream_info(stream: Any) -> StreamInfo:
    ctx = getattr(stream, "codec_context", None)
    codec = getattr(ctx, "name", None) if ctx is not None else None
    if codec is None and stream.type == "attachment":
        codec = getattr(stream, "mimetype", None)
    return StreamInfo(
        index=stream.index,
        kind=stream.type,
        codec=codec,
        time_base=stream.time_base,
        language=stream.metadata.get("language"),
        metadata=dict(stream.metadata),
        disposition=int(stream.disposition),
        internal=int(stream.discard) >= 48,  # AVDISCARD_ALL: the demuxer's own (MP4 chapters)
    )


def _chapters(container: Any) -> list[Chapter]:
    chapters = []
    for raw in container.chapters():
        base = Fraction(raw["time_base"])
        chapters.append(
            Chapter(raw["start"] * base, raw["end"] * base, dict(raw.get("metadata") or {}))
        )
    return chapters
