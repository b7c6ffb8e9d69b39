"""The frame index of a video: every frame's timestamp, its duration, and where decoding may start.

Built by reading every packet of the main video stream without decoding (fast: no pixels are
made). Frames in presentation order are the packets sorted by timestamp, so frame ``i`` of the
video is the one with the ``i``-th smallest timestamp, whatever the decode order (B-frames).
Keyframes say where a decoder can start, which is where segment jobs seek to.

Damage is found here too: a packet FFmpeg flags as corrupt, a read error, or a stream that ends
before its header says it should (a truncated download: fewer frames than the header counts,
or a last frame ending more than 0.1 s, or 1.5 frame durations, before the stated duration). By default that is an error naming the
frame; with ``keep_damaged`` the frames before the damage are kept and the rest dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from pipelines.io.video.errors import VideoError, describe_av_error
from pipelines.io.video.probe import VideoInfo


@dataclass(frozen=True, eq=False)
class FrameIndex:
    """Timestamps (``time_base`` units, presentation order, strictly increasing) of a video's frames."""

    pts: np.ndarray
    durations: np.ndarray
    keyframes: np.ndarray
    """Frame indices (sorted) at which decoding may start; always holds 0."""
    time_base: Fraction
    damage: str | None = None
    """What was wrong and where, when the frames after some damage were dropped."""
    first: int = 0
    """The video's number for this index's frame 0 (non-zero for a :meth:`window`)."""

    def __len__(self) -> int:
        return int(self.pts.size)

    def keyframe_before(self, frame: int) -> int:
        """The last keyframe at or before ``frame``."""
        position = int(np.searchsorted(self.keyframes, frame, side="right")) - 1
        return int(self.keyframes[max(position, 0)])

    def window(self, start: int, stop: int) -> FrameIndex:
        """The part of the index a decoder of frames [start, stop) needs: from the keyframe before ``start``.

        Small enough to send with every segment task, whatever the length of the video.
        """
        begin = self.keyframe_before(start)
        keys = self.keyframes[(self.keyframes >= begin) & (self.keyframes < stop)] - begin
        return FrameIndex(
            self.pts[begin:stop].copy(),
            self.durations[begin:stop].copy(),
            keys.astype(np.int64),
            self.time_base,
            self.damage,
            self.first + begin,
        )

    def seconds(self, frame: int) -> float:
        """The presentation time of ``frame`` in seconds."""
        return float(int(self.pts[frame]) * self.time_base)

    def digest(self) -> str:
        """A short hash of every timestamp and duration (part of a job's fingerprint)."""
        h = hashlib.sha256()
        h.update(str(self.time_base).encode())
        h.update(np.ascontiguousarray(self.pts, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(self.durations, dtype="<i8").tobytes())
        return h.hexdigest()[:20]


def index_frames(info: VideoInfo, keep_damaged: bool = False) -> FrameIndex:
    """The frame index of ``info``'s main video stream (see the module docstring for damage)."""
    import av

    pts: list[int] = []
    durations: list[int] = []
    keys: list[int] = []
    damage: str | None = None
    packets = 0
    with av.open(info.path, metadata_errors="ignore") as container:
        stream = container.streams[info.video_index]
        expected = _expected(stream, info)
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                packets += 1
                if packet.is_discard:
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    raise VideoError(
                        f"{info.path}: frame {len(pts)} of the video stream has no timestamp; "
                        "remux the file (e.g. to .mkv) so that its frames are timed"
                    )
                if packet.is_corrupt:
                    damage = f"frame {len(pts)} (packet at {float(stamp * info.time_base):.3f} s) is corrupt"
                    break
                pts.append(int(stamp))
                durations.append(int(packet.duration or 0))
                keys.append(bool(packet.is_keyframe))
        except av.FFmpegError as exc:
            damage = f"reading stopped at frame {len(pts)} ({describe_av_error(exc)})"
    if not pts:
        raise VideoError(f"{info.path}: the video stream has no frames")
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    sorted_pts = np.asarray(pts, dtype=np.int64)[order]
    if np.any(np.diff(sorted_pts) <= 0):
        at = int(np.flatnonzero(np.diff(sorted_pts) <= 0)[0]) + 1
        raise VideoError(
            f"{info.path}: frames {at - 1} and {at} have the same timestamp; "
            "frame-accurate reading needs distinct timestamps"
        )
    frame_durations = _durations(np.asarray(durations, dtype=np.int64)[order], sorted_pts, info)
    keyframes = np.flatnonzero(np.asarray(keys, dtype=bool)[order])
    keyframes = np.union1d(keyframes, [0]).astype(np.int64)
    if damage is None and expected is not None:
        damage = _short(packets, sorted_pts, frame_durations, expected, info.time_base)
    if damage is not None and not keep_damaged:
        raise VideoError(
            f"{info.path}: damaged: {damage}; {len(pts)} frames are readable before it "
            "(keep them with keep_damaged: true / --keep-damaged)"
        )
    return FrameIndex(sorted_pts, frame_durations, keyframes, info.time_base, damage)


def _expected(stream: Any, info: VideoInfo) -> tuple[str, float] | None:
    """What the header promises: ("frames", count) or ("seconds", end time), if anything."""
    if stream.frames:
        return ("frames", float(stream.frames))
    if stream.duration and stream.time_base:
        start = stream.start_time or 0
        return ("seconds", float((start + stream.duration) * stream.time_base))
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        seconds = _clock(tag)
        if seconds is not None:
            return ("seconds", seconds)
    return None


def _clock(text: str) -> float | None:
    """Seconds of ``HH:MM:SS.fraction`` (Matroska's DURATION tag)."""
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _durations(raw: np.ndarray, pts: np.ndarray, info: VideoInfo) -> np.ndarray:
    """Each frame's duration: the packet's, else the gap to the next frame, else one frame period."""
    gaps = np.diff(pts)
    period = _period(gaps, info)
    out = raw.copy()
    missing = out <= 0
    filled = np.append(gaps, period)
    out[missing] = filled[missing]
    return out


def _period(gaps: np.ndarray, info: VideoInfo) -> int:
    if gaps.size:
        return int(np.median(gaps))
    if info.frame_rate:
        return max(1, round(1 / (info.frame_rate * info.time_base)))
    return 1


def _short(
    packets: int,
    pts: np.ndarray,
    durations: np.ndarray,
    expected: tuple[str, float],
    stream_base: Fraction,
) -> str | None:
    """A description of the missing tail, when fewer frames were read than the header promises."""
    kind, value = expected
    if kind == "frames":
        if packets < int(value):
            return f"the header promises {int(value)} frames but the stream ends after {packets} (truncated?)"
        return None
    end = float((int(pts[-1]) + int(durations[-1])) * stream_base)
    tolerance = max(0.1, 1.5 * float(int(np.median(durations)) * stream_base))
    if end + tolerance < value:
        return f"the stream ends at {end:.3f} s but its header says {value:.3f} s (truncated?)"
    return None
