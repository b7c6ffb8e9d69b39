"""The openvino engine's trunk at several input widths: how its kernels' speed depends on width.

OpenVINO's AMX bf16 convolutions block the width in 16s; this script times the trunk graph of
RealESRGAN_x4plus (the part that holds nearly all the work) at one height and several widths,
interleaved, and prints the throughput of each, so a width whose remainder costs more shows as
a lower figure.

Usage::

    python bench/bench_widths.py [--precision bf16] [--height 100] [--widths 448 450 451 452 464]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import machine_line  # noqa: E402

from esrgan_plugin.engines.openvino.engine import OpenVinoEngine  # noqa: E402
from esrgan_plugin.models.loading import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesrgan-x4plus")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "int8"])
    parser.add_argument("--height", type=int, default=100)
    parser.add_argument("--widths", type=int, nargs="+", default=[448, 450, 451, 452, 456, 464])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = load_model(args.model)
    trunk = OpenVinoEngine(model.module, args.precision, torch.get_num_threads()).network.trunk
    rng = np.random.default_rng(0)
    inputs = {w: rng.random((1, 3, args.height, w), dtype=np.float32) for w in args.widths}
    for x in inputs.values():
        trunk(x)  # first calls: shapes, caches
    seconds: dict[int, list[float]] = {w: [] for w in args.widths}
    for _ in range(args.repeats):  # interleaved: the machine's load moves every width alike
        for w, x in inputs.items():
            start = time.perf_counter()
            trunk(x)
            seconds[w].append(time.perf_counter() - start)
    base = statistics.median(seconds[args.widths[0]]) / args.widths[0]
    print(f"## {args.model} trunk, openvino {args.precision}, height {args.height}\n")
    print(machine_line() + "\n")
    print(f"| width | width % 16 | seconds (median of {args.repeats}) | time per column vs first |")
    print("| ---: | ---: | ---: | ---: |")
    for w in args.widths:
        median = statistics.median(seconds[w])
        print(f"| {w} | {w % 16} | {median:.3f} | {median / w / base:.2f}x |")


if __name__ == "__main__":
    main()
