"""Joining encoded segments into one video without re-encoding, with the source's other streams.

Segment packets are copied as they are (a remux): each segment was encoded by its own encoder,
so each starts with a keyframe and references nothing outside itself, and all of them share one
set of encoder settings (their codec headers are checked to be equal). Every frame gets the
source's exact timestamp and duration back (the segment container may round them): the ``k``-th
frame shown by a segment is frame ``start + k`` of the timeline. Decode timestamps are rebuilt
for the whole stream as the presentation times shifted by the deepest frame reordering any
segment uses, which keeps them increasing across segment boundaries (B-frames).

From the source video, audio, subtitle and data streams are copied packet by packet (the output
container must be able to hold their codec; a stream it cannot hold is left out with a warning),
with container and stream metadata, dispositions, chapters, attachments (Matroska) and the
display rotation. Statistics tags that would be wrong after re-encoding (encoder, bit rates,
frame counts, durations) are not copied.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipelines.io.video.errors import VideoError, describe_av_error
from pipelines.io.video.index import FrameIndex
from pipelines.io.video.probe import VideoInfo

log = logging.getLogger(__name__)

_DROPPED_TAGS = {
    "encoder",
    "major_brand",
    "minor_version",
    "compatible_brands",
    "duration",
    "bps",
    "number_of_frames",
    "number_of_bytes",
    "_statistics_tags",
    "_statistics_writing_app",
    "_statistics_writing_date_utc",
    "rotate",
    "alpha_mode",
}


@dataclass(frozen=True)
class Segment:
    """A finished segment file holding frames [start, stop) of the timeline; ``delay`` is its reordering depth."""

    path: str
    start: int
    stop: int
    delay: int


def segment_delay(path: str | Path, frames: int) -> int:
    """How far a segment's decode order runs ahead of its presentation order (0 without B-frames).

    Also checks that the segment holds exactly ``frames`` frames.
    """
    import av

    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    stamps = [int(p.pts) for p in packets if p.pts is not None]
    if len(stamps) != frames or len(packets) != frames:
        raise VideoError(f"{path}: holds {len(stamps)} timed frames, expected {frames}")
    ranks = {stamp: rank for rank, stamp in enumerate(sorted(stamps))}
    return max(0, max(i - ranks[s] for i, s in enumerate(stamps)))


def join_segments(
    target: str | Path,
    container_format: str,
    segments: Sequence[Segment],
    timeline: FrameIndex,
    source: VideoInfo | None,
    rotation: int = 0,
    keep_damaged: bool = False,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write ``target`` from ``segments`` (in order) and ``source``'s other streams (see the
    module docstring); ``tags`` go into the container's metadata after the source's."""
    import av

    delay = max((s.delay for s in segments), default=0)
    try:
        options = _muxer_options(container_format, tags)
        with av.open(str(target), "w", format=container_format, options=options) as out:
            with av.open(segments[0].path) as first:
                template = first.streams.video[0]
                video = out.add_stream_from_template(template)
                extradata = bytes(template.codec_context.extradata or b"")
                codec = str(template.codec_context.name)
                alpha = template.metadata.get("alpha_mode") or template.metadata.get("ALPHA_MODE")
            video.time_base = timeline.time_base
            if alpha:
                video.metadata["alpha_mode"] = alpha
            if rotation:
                video.set_display_rotation(rotation)
            copies = _prepare_copies(out, source, video) if source is not None else {}
            out.metadata.update(dict(tags or {}))
            annexb = _annexb_filter(out, codec)
            packets = _video_packets(segments, timeline, delay, video, extradata, annexb)
            if copies:
                assert source is not None
                others = _source_packets(source, copies, keep_damaged)
                packets = heapq.merge(packets, others, key=lambda item: item[0])
            for _, packet in packets:
                out.mux(packet)
    except av.FFmpegError as exc:
        raise VideoError(
            f"{target}: joining the segments failed ({describe_av_error(exc)})"
        ) from None


def _muxer_options(container_format: str, tags: Mapping[str, str] | None) -> dict[str, str]:
    """MP4/MOV keep only their own tag names unless told to write any key (our provenance)."""
    if tags and any(name in container_format.split(",") for name in ("mp4", "mov", "ipod")):
        return {"movflags": "use_metadata_tags"}
    return {}


def _prepare_copies(out: Any, source: VideoInfo, video: Any) -> dict[int, Any]:
    """Output streams for the source's other streams, with metadata, chapters and attachments."""
    import av

    out.metadata.update(clean(source.metadata))
    video.metadata.update(clean(source.video.metadata))
    _set_disposition(video, source.video.disposition)
    copies: dict[int, Any] = {}
    with av.open(source.path, metadata_errors="ignore") as container:
        for info in source.others():
            stream = container.streams[info.index]
            if info.kind == "attachment":
                _attach(out, stream, info.index)
                continue
            try:
                copy = out.add_stream_from_template(stream)
            except ValueError:  # FFmpeg: the container does not take this codec
                log.warning(
                    "%s: stream #%d (%s %s) cannot be stored in a %s file; it is not copied "
                    "(write .mkv to keep it)",
                    source.path,
                    info.index,
                    info.kind,
                    info.codec or "unknown codec",
                    out.format.name,
                )
                continue
            copy.metadata.update(clean(info.metadata))
            _set_disposition(copy, info.disposition)
            copies[info.index] = copy
    if source.chapters:
        base = Fraction(1, 1_000_000)
        out.set_chapters(
            [
                {
                    "id": n + 1,
                    "start": round(c.start / base),
                    "end": round(c.end / base),
                    "time_base": base,
                    "metadata": dict(c.metadata),
                }
                for n, c in enumerate(source.chapters)
            ]
        )
    return copies


def _attach(out: Any, stream: Any, index: int) -> None:
    name, mimetype = stream.metadata.get("filename"), stream.metadata.get("mimetype")
    data = getattr(stream, "data", None)
    if not name or data is None:
        return
    try:
        out.add_attachment(name, mimetype or "application/octet-stream", bytes(data))
    except (ValueError, NotImplementedError, Exception) as exc:  # noqa: BLE001 - optional extra
        log.warning("attachment #%d (%s) is not copied: %s", index, name, exc)


def _set_disposition(stream: Any, value: int) -> None:
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        stream.disposition = value


def clean(metadata: Mapping[str, str]) -> dict[str, str]:
    """``metadata`` without the tags re-encoding makes wrong (encoder, statistics, durations)."""
    return {
        k: v
        for k, v in metadata.items()
        if k.lower() not in _DROPPED_TAGS
        and not k.upper().startswith(("BPS", "NUMBER_OF_", "DURATION"))
    }


def _annexb_filter(out: Any, codec: str) -> str | None:
    """The bitstream filter H.264/HEVC needs in a container without global headers (AVI), if any.

    Segments are stored in Matroska, with the codec headers out of band; a container that keeps
    no headers of its own needs them in the stream (Annex B start codes) instead.
    """
    import av

    if codec not in ("h264", "hevc") or out.format.flags & av.format.Flags.global_header.value:
        return None
    return f"{codec}_mp4toannexb"


def _video_packets(
    segments: Sequence[Segment],
    timeline: FrameIndex,
    delay: int,
    stream: Any,
    extradata: bytes,
    annexb: str | None = None,
) -> Iterator[tuple[float, Any]]:
    """(decode time in seconds, packet) of every segment, retimed from ``timeline``."""
    import av

    pts, durations, base = timeline.pts, timeline.durations, timeline.time_base
    step = int(durations[0]) if len(durations) else 1
    decoded = 0
    for segment in segments:
        with av.open(segment.path) as container:
            source = container.streams.video[0]
            own = bytes(source.codec_context.extradata or b"")
            if own != extradata and source.codec_context.name in ("h264", "hevc"):
                raise VideoError(
                    f"{segment.path}: encoded with other codec headers than the first segment; "
                    "restart the job"
                )
            packets = [p for p in container.demux(source) if p.size]
            if annexb is not None:
                packets = _filtered(packets, annexb, source)
        if len(packets) != segment.stop - segment.start:
            raise VideoError(
                f"{segment.path}: holds {len(packets)} frames, expected {segment.stop - segment.start}"
            )
        order = sorted(range(len(packets)), key=lambda i: int(packets[i].pts or 0))
        rank = {i: r for r, i in enumerate(order)}
        for i, packet in enumerate(packets):
            frame = segment.start + rank[i]
            behind = decoded - delay
            dts = int(pts[behind]) if behind >= 0 else int(pts[0]) - (delay - decoded) * step
            packet.time_base = base
            packet.pts, packet.dts, packet.duration = int(pts[frame]), dts, int(durations[frame])
            packet.stream = stream
            decoded += 1
            yield float(dts * base), packet


def _filtered(packets: list[Any], name: str, source: Any) -> list[Any]:
    """``packets`` through the bitstream filter ``name`` (one packet out per packet in)."""
    import av.bitstream

    bsf = av.bitstream.BitStreamFilterContext(name, source)
    out = [q for p in packets for q in bsf.filter(p)]
    out += bsf.filter(None)  # drain
    if len(out) != len(packets):
        raise VideoError(f"{name} turned {len(packets)} packets into {len(out)}")
    return out


def _source_packets(
    source: VideoInfo, copies: Mapping[int, Any], keep_damaged: bool
) -> Iterator[tuple[float, Any]]:
    """(decode time in seconds, packet) of the copied streams, in file order."""
    import av

    with av.open(source.path, metadata_errors="ignore") as container:
        streams = [container.streams[i] for i in copies]
        last = float("-inf")
        try:
            for packet in container.demux(*streams):
                if not packet.size:
                    continue
                stamp = packet.dts if packet.dts is not None else packet.pts
                if stamp is not None and packet.time_base is not None:
                    last = max(last, float(stamp * packet.time_base))
                packet.stream = copies[packet.stream_index]
                yield last, packet
        except av.FFmpegError as exc:
            if not keep_damaged:
                raise VideoError(
                    f"{source.path}: reading its other streams failed ({describe_av_error(exc)})"
                ) from None
