"""The openvino engine at several input widths: its time per column, with and without the
zero-padding of the width that the bf16 and int8 graphs get on AMX CPUs.

OpenVINO's AMX convolutions run some widths far slower than others (a prime width like 449 at
several times the cost per column of 448), so the engine pads the trunk's width to a multiple
of 16 with a column mask (:mod:`esrgan_plugin.engines.openvino.graphs`). This script runs the
whole network (trunk and tail) of RealESRGAN_x4plus at one height and several widths, padded as
the engine does (widths that are a multiple of 16 run unpadded either way) and with the plain
graphs at every width, interleaved, and prints the time per column of each against the first
width as the engine runs it.

Usage::

    python bench/bench_widths.py [--precision bf16] [--height 100] [--widths 448 449 451 455 464]
"""

from __future__ import annotations

import argparse
import dataclasses
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
    parser.add_argument("--widths", type=int, nargs="+", default=[448, 449, 451, 455, 464])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = load_model(args.model)
    padded = OpenVinoEngine(model.module, args.precision, torch.get_num_threads()).network
    runs = {"padded": padded}
    if padded.masked is not None:  # the plain graphs at every width
        runs["unpadded"] = dataclasses.replace(padded, masked=None)
    rng = np.random.default_rng(0)
    inputs = {w: rng.random((1, 3, args.height, w), dtype=np.float32) for w in args.widths}
    for network in runs.values():
        for x in inputs.values():
            network(x)  # first calls: shapes, caches
    seconds: dict[tuple[str, int], list[float]] = {
        (name, w): [] for name in runs for w in args.widths
    }
    for _ in range(args.repeats):  # interleaved: the machine's load moves every run alike
        for w, x in inputs.items():
            for name, network in runs.items():
                start = time.perf_counter()
                network(x)
                seconds[name, w].append(time.perf_counter() - start)
    base = statistics.median(seconds["padded", args.widths[0]]) / args.widths[0]
    print(f"## {args.model}, openvino {args.precision}, height {args.height}\n")
    print(machine_line() + "\n")
    masked = (
        "none" if padded.masked is None else f"widths not a multiple of {padded.column_multiple}"
    )
    print(f"masked graphs (zero-padded widths): {masked}\n")
    names = list(runs)
    print(
        "| width | width % 16 | "
        + " | ".join(f"{n} s (median of {args.repeats}) | {n} per column" for n in names)
        + " |"
    )
    print("| ---: | ---: |" + " ---: | ---: |" * len(names))
    for w in args.widths:
        cells = []
        for name in names:
            median = statistics.median(seconds[name, w])
            cells += [f"{median:.3f}", f"{median / w / base:.2f}x"]
        print(f"| {w} | {w % 16} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
