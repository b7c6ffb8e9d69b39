"""Video memory benchmark: peak RSS of a video job against the clip's length.

A synthetic H.264 clip with an AAC sound track (made frame by frame, never held whole) goes
through :func:`pipelines.api.transform_video` with a nearest-neighbour x2 frame function (no
network: what is measured is the job's own memory, decoding, segments, encoding and joining),
threaded executor, default segments, libx264 crf 18. Each run is a fresh subprocess, so its
peak RSS (``ru_maxrss``) is its own. The issue's question: does memory grow with the video?

    python bench/bench_video_memory.py [--seconds 10 600] [--size 160x120]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

FPS = 25
SAMPLE_RATE = 48000


def moving_pattern(width: int, height: int, frames: int) -> Iterator[np.ndarray]:
    """Smooth gradients moving each frame: (height, width, 3) uint8 frames, one at a time."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for n in range(frames):
        pixels = np.dstack(
            [
                128 + 100 * np.sin((xx + 3 * n) / 17),
                128 + 100 * np.cos((yy - 2 * n) / 23),
                128 + 60 * np.sin((xx + yy + 5 * n) / 31),
            ]
        )
        yield pixels.clip(0, 255).astype(np.uint8)


def make_clip(path: Path, seconds: int, width: int, height: int) -> None:
    """``seconds`` of a moving gradient at 25 frames/s, with a 440 Hz tone as AAC."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        samples_per_frame = SAMPLE_RATE // FPS
        for n, pixels in enumerate(moving_pattern(width, height, seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(pixels, "rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
            t = (np.arange(samples_per_frame) + n * samples_per_frame) / SAMPLE_RATE
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            sound = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            sound.sample_rate = SAMPLE_RATE
            sound.pts = n * samples_per_frame
            sound.time_base = Fraction(1, SAMPLE_RATE)
            for packet in audio.encode(sound):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)


def nearest_x2(frames: np.ndarray) -> np.ndarray:
    return frames.repeat(2, axis=1).repeat(2, axis=2)


def one_run(source: str, target: str) -> None:
    """In a fresh process: the job, then its figures as one JSON line."""
    from pipelines.api import transform_video

    start = time.perf_counter()
    result = transform_video(source, target, nearest_x2, 2.0, {"crf": 18}, overwrite=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": result.frames, "wall": wall, "rss": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 600])
    parser.add_argument("--size", default="160x120")
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        one_run(*args.run)
        return
    width, height = (int(v) for v in args.size.split("x"))
    print(f"## Video job memory: {width}x{height} H.264 + AAC -> x2 libx264, threads\n")
    print("| clip | frames | wall s | frames/s | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as scratch:
        for seconds in args.seconds:
            source = Path(scratch) / f"clip-{seconds}s.mp4"
            make_clip(source, seconds, width, height)
            command = [
                sys.executable,
                __file__,
                "--run",
                str(source),
                str(Path(scratch) / "out.mp4"),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"| {seconds} s | {figures['frames']} | {figures['wall']:.1f} | "
                f"{figures['frames'] / figures['wall']:.1f} | {figures['rss']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
