"""Video benchmark: frames/s of ``esrgan upscale`` on clips, the share of wall time spent outside
the network (decoding, encoding, joining, start of the job), and a Dask run's overhead.

A synthetic clip (smooth moving gradients with an audio track) is upscaled through the same code
as ``esrgan upscale clip.mp4 -o out.mp4`` (:func:`esrgan_plugin.cli.video.upscale_video`), with
the frame function timed inside: what the job spends outside it is overhead (one segment, so
that nothing runs beside the timed calls). The Dask column splits the clip into one segment per
worker of the ``processes`` executor's LocalCluster (one per core, up to 4) and compares that run
with the same segments on threads; the cluster's time includes starting its workers, each of
which imports torch, loads the model and compiles it.

    python bench/bench_video.py [--models realesr-animevideov3-x4 realesrgan-x4plus]
                                [--sizes 320x240 640x360] [--frames 24] [--precision PRECISION]

``--precision`` defaults to bf16 where the CPU has bf16 arithmetic (AVX512-BF16 or AMX), else
fp32 (``bench/native_bf16.py``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import dataclasses
import sys
import tempfile
import time
from fractions import Fraction
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import machine_line  # noqa: E402
from bench_video_memory import moving_pattern  # noqa: E402
from native_bf16 import BF16_LEFT_OUT, bf16_here  # noqa: E402

from esrgan_plugin.cli import video  # noqa: E402
from esrgan_plugin.options import UpscaleParams  # noqa: E402
from pipelines.api import write_video  # noqa: E402


@dataclasses.dataclass(frozen=True)
class TimedFrames(video.UpscaleFrames):
    """The CLI's frame function, timing itself: seconds spent inside, one line per call, into
    the file ``log`` (tasks may be pickled, even on threads, so the times go through a file)."""

    log: str = ""

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        try:
            return super().__call__(frames)
        finally:
            with open(self.log, "a") as f:
                f.write(f"{time.perf_counter() - start}\n")


def inside(times: Path) -> float:
    return sum(float(v) for v in times.read_text().split()) if times.exists() else 0.0


def clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A smooth moving test pattern at 25 frames/s."""
    write_video(path, moving_pattern(width, height, frames), fps=Fraction(25), overwrite=True)
    return path


def run(
    source: Path, target: Path, params: UpscaleParams, executor: str, segment_frames: int
) -> float:
    args = argparse.Namespace(
        video_codec=None,
        crf=None,
        preset=None,
        pix_fmt=None,
        executor=executor,
        overwrite=True,
        restart=True,
        keep_damaged=False,
        segment_frames=segment_frames,
    )
    start = time.perf_counter()
    video.upscale_video(source, target, params, args, {"bench": True}, None, 4.0, False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["realesr-animevideov3-x4", "realesrgan-x4plus"]
    )
    parser.add_argument("--sizes", nargs="+", default=["320x240", "640x360"])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument(
        "--precision",
        help="default: bf16 where the CPU has bf16 arithmetic (AVX512-BF16 or AMX), else fp32",
    )
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    precision = args.precision or ("bf16" if bf16_here() else "fp32")
    print("## Video: esrgan upscale on clips\n")
    print(machine_line() + "\n")
    if args.precision is None and precision != "bf16":
        print(f"{BF16_LEFT_OUT}; the clips run {precision}.\n")
    print(
        "| model | size | frames | seconds | frames/s | outside the network | Dask processes vs threads |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    workers = max(1, min(os.cpu_count() or 1, 4))  # the processes executor's LocalCluster
    with tempfile.TemporaryDirectory() as scratch:
        times = Path(scratch) / "inside.txt"
        video.UpscaleFrames = partial(TimedFrames, log=str(times))  # type: ignore[misc]
        for model in args.models:
            frames = args.frames if "animevideo" in model else max(4, args.frames // 6)
            params = UpscaleParams(model=model, precision=precision)
            for size in args.sizes:
                width, height = (int(v) for v in size.split("x"))
                source = clip(Path(scratch) / f"in-{size}.mp4", width, height, frames)
                run(source, Path(scratch) / "warm.mp4", params, "threads", frames)  # load, compile
                times.unlink(missing_ok=True)
                wall = run(source, Path(scratch) / "out.mp4", params, "threads", frames)
                outside = 1 - inside(times) / wall
                dask = "-"
                if not args.no_dask:
                    # as many segments as the cluster has workers, run both ways
                    segment = max(1, -(-frames // workers))
                    threads = run(source, Path(scratch) / "t.mp4", params, "threads", segment)
                    cluster = run(source, Path(scratch) / "dask.mp4", params, "processes", segment)
                    dask = f"{cluster:.1f} s vs {threads:.1f} s = {cluster / threads:.2f}x"
                print(
                    f"| {model} | {size} | {frames} | {wall:.1f} | {frames / wall:.2f} | "
                    f"{outside:.0%} | {dask} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
