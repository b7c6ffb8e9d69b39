"""Small networks on the CPU: the pytorch engine against the openvino engine, first call and warm.

The evidence for ``auto`` keeping networks under a million parameters on pytorch
(``AUTO_OPENVINO_MIN_PARAMETERS`` in ``esrgan_plugin/engines/registry.py``): the compact video
model, whole frames at video sizes, median of interleaved rounds after a first call that
includes preparing the engine (compiling; exporting when the graph is not cached yet). fp32
and bf16, bf16 only where the CPU has bf16 arithmetic (``bench/native_bf16.py``).

    python bench/bench_small_networks.py [--model realesr-animevideov3-x4] [--rounds 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from skimage import data, transform

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import machine_line  # noqa: E402
from native_bf16 import BF16_LEFT_OUT, float_precisions  # noqa: E402

from esrgan_plugin import UpscaleOptions, Upscaler, load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesr-animevideov3-x4")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model = load_model(args.model)
    parameters = sum(p.numel() for p in model.module.parameters())
    print(f"## {args.model} ({parameters:,} parameters): pytorch and openvino engines\n")
    print(machine_line() + "\n")
    precisions = float_precisions()
    if "bf16" not in precisions:
        print(f"{BF16_LEFT_OUT}.\n")
    print("| input | engine | precision | first call s | warm s (median) |")
    print("| --- | --- | --- | ---: | ---: |")
    photo = data.astronaut()
    for width, height in [(320, 240), (640, 360)]:
        image = (transform.resize(photo, (height, width), anti_aliasing=True) * 255).astype(
            np.uint8
        )
        runs: dict[tuple[str, str], tuple[Upscaler, float, list[float]]] = {}
        for engine in ("pytorch", "openvino"):
            for precision in precisions:
                start = time.perf_counter()
                upscaler = Upscaler(
                    model, UpscaleOptions(engine=engine, precision=precision, tile=0)
                )
                upscaler.upscale(image)
                runs[(engine, precision)] = (upscaler, time.perf_counter() - start, [])
        for _ in range(args.rounds):
            for upscaler, _first, times in runs.values():
                start = time.perf_counter()
                upscaler.upscale(image)
                times.append(time.perf_counter() - start)
        for (engine, precision), (_, first, times) in runs.items():
            print(
                f"| {width}x{height} | {engine} | {precision} | {first:.2f} | "
                f"{statistics.median(times):.3f} |"
            )


if __name__ == "__main__":
    main()
