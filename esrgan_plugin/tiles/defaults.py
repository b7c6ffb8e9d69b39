"""The default tile: from the halo the model needs, measured costs, and total (not free) memory.

Two runs of the same command must tile the same way, so the choice depends only on the image
size, the model, the precision and the device's total memory, never on memory that happens to
be free. Among tile sides whose padded tile fits the memory budget, the one with the smallest
predicted time is used, where the prediction multiplies each tile's padded area by a measured
per-pixel cost that depends on the padded side (cache effects; ``bench/bench_tiles.py``). Sides
whose halo adds more than a third to the work are only used when nothing else fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from esrgan_plugin.arch.strips import TAIL_STRIP_ELEMENTS
from esrgan_plugin.device import DeviceLike
from esrgan_plugin.tiles.grid import make_tiles

MAX_HALO_WORK = 4 / 3
"""Default tiles process at most this many input pixels per output pixel (halo cost <= 1/3)."""

TILE_SIDES = (64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1280, 1536, 2048, 3072)
"""Candidate tile sides, in input pixels."""

BYTES_PER_ELEMENT = {"fp32": 6.4, "bf16": 5.3, "fp16": 5.3, "int8": 6.4}
"""Peak memory per element of the activation model in ``activation_bytes_per_pixel``.

Measured on the CPU with the HR tail in row strips: ``bench/bench_tiles.py memory`` (peak RSS
growth of whole-image forwards at 384x384 and 768x768 in fresh processes, nf 64 x4 RRDBNet, two
runs) gave slopes of 2.2-2.7 KB per input pixel in fp32 and 1.3-2.9 KB in bf16; one 1168x1168
forward (a 1024 tile with halo 72) peaked at 4.90 GB in fp32 and 3.11 GB in bf16, i.e. 3.6 and
2.3 KB per pixel above the strips' reserve. The figures are 6.4 (fp32) and 5.3 (bf16) bytes per
modelled element, the largest of these. fp16 (GPU) is assumed to behave as bf16 and int8 as
fp32 (both unmeasured).
"""

TAIL_RESERVE_BYTES = 2 * 3 * TAIL_STRIP_ELEMENTS * 4
"""Memory set aside for the up-sampling tail's row strips: three fp32 HR maps of one strip,
twice over for the allocator (:mod:`esrgan_plugin.arch.strips`)."""

MEMORY_FRACTION = {"cpu": 0.25, "cuda": 0.5, "mps": 0.25}
"""Share of the device's total memory the default tile may use for activations."""


@dataclass(frozen=True)
class CostCurve:
    """Relative time per padded input pixel against the padded tile side (1.0 at the first side)."""

    sides: tuple[int, ...]
    cost: tuple[float, ...]

    def at(self, side: float) -> float:
        """Cost per pixel at ``side``, interpolated in log(side), constant beyond the ends."""
        return float(np.interp(math.log(side), np.log(self.sides), self.cost))


FLAT = CostCurve((1,), (1.0,))
"""No measured cache effect: time proportional to pixels (GPUs, unmeasured precisions)."""

CPU_COST = {
    "fp32": FLAT,
    "bf16": FLAT,
}
"""Measured per-pixel cost curves on the CPU by precision (``bench/bench_tiles.py curve``).

Measured flat: CPU time per pixel of nf 64 x4 forwards at padded sides 64, 128, 256 and 512 was
31.0, 26.7, 29.2, 27.7 us (fp32) and 20.0, 18.8, 18.0, 20.1 us (bf16), within the noise of
this shared machine and with no trend towards small tiles (since freed blocks are reused, large
forwards no longer pay page faults). So the default is the whole image when it fits, else the
largest tile that does; a measured non-flat curve for another machine goes here.
"""


def activation_bytes_per_pixel(
    feature_channels: int, scale: int, multiple: int, precision: str
) -> float:
    """Estimated peak activation memory per LR input pixel (measured per precision).

    Modelled elements per pixel: ``8 * nf`` for the trunk (the dense-block concatenations, the
    residual stream and the long skip) plus the ``3 * scale**2`` output values; the HR tail runs
    in row strips of bounded size (:data:`TAIL_RESERVE_BYTES`, not per pixel). For
    pixel-unshuffled (x1/x2) models the trunk runs on ``1 / multiple**2`` of the pixels.
    """
    elements = 8 * feature_channels / multiple**2 + 3 * scale**2
    return elements * BYTES_PER_ELEMENT.get(precision, 5.5)


def total_memory_bytes(device: DeviceLike) -> int:
    """The device's total memory (GPU memory, or MemTotal): the same on every run."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(str(device)).total_memory)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30  # unknown platform: assume 8 GiB


def memory_budget_pixels(device: DeviceLike, bytes_per_pixel: float) -> int:
    """Padded input pixels one forward pass may hold under the default memory budget."""
    share = MEMORY_FRACTION.get(device.type, 0.25)
    budget = total_memory_bytes(device) * share - TAIL_RESERVE_BYTES
    return max(TILE_SIDES[0] ** 2, int(budget / bytes_per_pixel))


def cost_curve(device: DeviceLike, precision: str) -> CostCurve:
    """The measured per-pixel cost curve for this device and precision (flat when unmeasured)."""
    return CPU_COST.get(precision, FLAT) if device.type == "cpu" else FLAT


def predicted_cost(
    height: int, width: int, tile: int, halo: int, multiple: int, curve: CostCurve
) -> tuple[float, float]:
    """(predicted time, work) of a grid: sum of padded areas x per-pixel cost, and padded / kept area."""
    if tile == 0:
        return height * width * curve.at(math.sqrt(height * width)), 1.0
    time = padded = 0.0
    for t in make_tiles(height, width, tile, halo, multiple):
        h, w = t.input_shape
        padded += h * w
        time += h * w * curve.at(math.sqrt(h * w))
    return time, padded / (height * width)


def choose_tile(
    height: int,
    width: int,
    halo: int,
    multiple: int,
    max_pixels: int,
    curve: CostCurve = FLAT,
) -> int:
    """0 (whole image) or the tile side with the lowest predicted time that fits ``max_pixels``.

    Grids whose halo costs more than ``MAX_HALO_WORK`` are used only when no grid within it
    fits; the smallest candidate side is the last resort.
    """
    candidates: list[tuple[bool, float, int]] = []
    if height * width <= max_pixels:
        time, _ = predicted_cost(height, width, 0, halo, multiple, curve)
        candidates.append((False, time, 0))
    for side in TILE_SIDES:
        side = -(-side // multiple) * multiple
        if side >= max(height, width):
            break
        span = side + 2 * halo
        if min(span, height) * min(span, width) > max_pixels:
            continue
        time, work = predicted_cost(height, width, side, halo, multiple, curve)
        candidates.append((work > MAX_HALO_WORK, time, side))
    if not candidates:
        return -(-TILE_SIDES[0] // multiple) * multiple
    return min(candidates)[2]
