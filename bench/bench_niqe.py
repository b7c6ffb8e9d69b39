"""NIQE speed on a 2k image: every block fitted at once against the same code one block at a time.

BasicSR's ``calculate_niqe`` loops over 96x96 blocks in Python and fits five generalised
Gaussians per block, rebuilding a 9,801-entry gamma table for every fit and scanning all of it;
the project smooths with the separable Gaussian in two 1-D passes, fits all blocks of a scale in
one array operation and bisects a cached table. Every
row runs the project's own code with those parts swapped back in, and all must agree.
Medians of interleaved runs on a 2048x1080 photo (the official ESRGAN output of baboon, resized).

    python bench/bench_niqe.py [--repeats 3] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path
from unittest import mock

import cv2
import numpy as np

from esrgan_plugin.device import cpu_info
from pipelines.io.images import read_image
from training.evaluation import niqe as niqe_module

FLAGS = ("avx512_bf16", "amx_bf16", "avx512_vnni")


def cpu_description() -> str:
    """CPU model, the flags that matter here, cores and the load average."""
    info = cpu_info()
    model, flags = info.model, info.flags
    present = ", ".join(f for f in FLAGS if f in flags) or "none of " + ", ".join(FLAGS)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}; flags: {present}; {os.cpu_count()} cores; load average {load}"


ONE_AT_A_TIME = niqe_module._block_features


def per_block_features(blocks: np.ndarray) -> np.ndarray:
    """The block fit called once per block, as BasicSR's loop does."""
    return np.concatenate([ONE_AT_A_TIME(b[None]) for b in blocks])


def brute_force_nearest(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """BasicSR's search: the squared distance to every grid entry, then argmin."""
    return np.argmin((grid[None, :] - values[:, None]) ** 2, axis=1)


def no_separation(window: np.ndarray) -> tuple[None, None]:
    """The 7x7 window applied as one 2-D convolution, as BasicSR does."""
    return None, None


VARIANTS: dict[str, dict[str, object]] = {
    "2-D window, one block at a time, table rebuilt per fit, full scan (BasicSR's structure)": {
        "_separate": no_separation,
        "_block_features": per_block_features,
        "_r_gamma": niqe_module._r_gamma.__wrapped__,
        "nearest_on_grid": brute_force_nearest,
    },
    "2-D window, all blocks at once, cached table, bisection": {"_separate": no_separation},
    "separable window, all blocks at once, cached table, bisection (training.evaluation.niqe)": {},
}


def run_variant(image: np.ndarray, patches: dict[str, object]) -> tuple[float, float]:
    """(seconds, NIQE) of one run with the given module functions swapped in."""
    with contextlib.ExitStack() as stack:
        for name, fn in patches.items():
            stack.enter_context(mock.patch.object(niqe_module, name, fn))
        start = time.perf_counter()
        value = niqe_module.niqe(image)
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = parser.parse_args()
    photo = read_image(
        Path(args.shared) / "data" / "images" / "esrgan_official_output_baboon_x4.png"
    )
    image = cv2.resize(photo, (2048, 1080), interpolation=cv2.INTER_CUBIC)
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"CPU: {cpu_description()}; OMP_NUM_THREADS={threads}; shared machine, figures are noisy")
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    values = set()
    for _ in range(args.repeats):
        for name, patches in VARIANTS.items():
            seconds, value = run_variant(image, patches)
            times[name].append(seconds)
            values.add(round(value, 9))
    print(f"\n#### NIQE of a 2048x1080 RGB image, median of {args.repeats} interleaved runs\n")
    print("| implementation | seconds | speed-up |")
    print("| --- | ---: | ---: |")
    reference = statistics.median(next(iter(times.values())))
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"| {name} | {median:.2f} | {reference / median:.1f}x |")
    print(f"\nNIQE values: {sorted(values)} (must be one value)")


if __name__ == "__main__":
    main()
