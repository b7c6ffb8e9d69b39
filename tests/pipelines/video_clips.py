"""Tiny synthetic video clips made with PyAV for the video tests (a few frames, 64x48 or so).

Frames are smooth gradients that move a little from frame to frame (so lossy codecs stay close),
returned with the timestamps they were written at, so that tests know what a clip holds without
decoding it with the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SRT = "1\n00:00:00,000 --> 00:00:00,200\nHello\n\n2\n00:00:00,250 --> 00:00:00,400\nWorld\n\n"


@dataclass
class Clip:
    """A clip on disk: its frames as written (before any lossy coding), timestamps and time base."""

    path: Path
    frames: np.ndarray
    pts: list[int]
    time_base: Fraction
    streams: list[str] = field(default_factory=list)


def frames_of(count: int, height: int = 48, width: int = 64, alpha: bool = False) -> np.ndarray:
    """``count`` smooth RGB(A) uint8 frames, each shifted a little from the one before."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    out = []
    for n in range(count):
        r = 40 + 160 * (xx + 2 * n) / (width + 2 * count)
        g = 30 + 180 * yy / height
        b = 128 + 60 * np.sin((xx + yy + 3 * n) / 9)
        planes = [r, g, b]
        if alpha:
            planes.append(255 * np.clip((xx - 8) / (width - 16), 0, 1))
        out.append(np.rint(np.dstack(planes)).clip(0, 255).astype(np.uint8))
    return np.stack(out)


def vfr_pts(count: int) -> list[int]:
    """Variable-rate timestamps in milliseconds: gaps of 40 ms, with every third gap 80 ms."""
    pts, t = [], 0
    for n in range(count):
        pts.append(t)
        t += 80 if n % 3 == 2 else 40
    return pts


def make_clip(
    path: Path,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    count: int = 20,
    height: int = 48,
    width: int = 64,
    keyint: int = 4,
    audio: str | None = "aac",
    subtitles: bool = False,
    rotation: int = 0,
    title: str | None = "Test clip",
    chapter: bool = True,
    frames: np.ndarray | None = None,
    options: dict[str, str] | None = None,
) -> Clip:
    """Write a clip: video at variable frame rate (ms time base), optional audio, subtitles, chapter."""
    alpha = any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    pixels = frames if frames is not None else frames_of(count, height, width, alpha=alpha)
    pts = vfr_pts(len(pixels))
    base = Fraction(1, 1000)
    names = []
    srt_path = path.with_suffix(".srt")
    if subtitles:
        srt_path.write_text(SRT)
    with av.open(str(path), "w") as out:
        if title:
            out.metadata["title"] = title
        video = out.add_stream(codec, rate=25)
        video.width, video.height, video.pix_fmt = pixels.shape[2], pixels.shape[1], pix_fmt
        video.time_base = base
        video.codec_context.time_base = base
        video.codec_context.gop_size = keyint
        video.codec_context.options = {"threads": "1", **(options or {})}
        video.metadata["language"] = "eng"
        if rotation:
            video.set_display_rotation(rotation)
        names.append("video")
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=48000)
            sound.layout = "mono"
            sound.metadata["language"] = "fra"
            names.append("audio")
        subs = None
        if subtitles:
            source = av.open(str(srt_path))
            subs = out.add_stream_from_template(source.streams.subtitles[0])
            subs.metadata["language"] = "deu"
            names.append("subtitle")
        if chapter:
            out.set_chapters(
                [{"id": 1, "start": 0, "end": 300, "time_base": base, "metadata": {"title": "One"}}]
            )
        fmt = "rgba" if pixels.shape[3] == 4 else "rgb24"
        for image, stamp in zip(pixels, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format=fmt)
            frame.pts, frame.time_base = stamp, base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            seconds = (pts[-1] + 40) / 1000
            t = np.arange(int(48000 * seconds)) / 48000
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            fmt_audio = "s16" if audio.startswith("pcm_s16") else "fltp"
            if fmt_audio == "s16":
                wave = (wave * 32767).astype(np.int16)
            samples = av.AudioFrame.from_ndarray(wave, format=fmt_audio, layout="mono")
            samples.sample_rate, samples.pts = 48000, 0
            out.mux(sound.encode(samples))
            out.mux(sound.encode(None))
        if subs is not None:
            for packet in source.demux(source.streams.subtitles[0]):
                if packet.dts is None:
                    continue
                packet.stream = subs
                out.mux(packet)
            source.close()
    return Clip(path, pixels, pts, base, names)


def packets(path: Path, kind: str) -> list[tuple[float | None, bytes]]:
    """(time in seconds, payload) of every packet of the first ``kind`` stream."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return []
        return [
            (None if p.pts is None else float(p.pts * p.time_base), bytes(p))
            for p in container.demux(streams[0])
            if p.size
        ]


def video_times(path: Path) -> list[float]:
    """Presentation times in seconds of the video frames, sorted."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.size)


def x2(frames: np.ndarray) -> np.ndarray:
    """Nearest-neighbour x2 of (T, H, W, C) frames: the tests' frame function."""
    return frames.repeat(2, axis=1).repeat(2, axis=2)
