"""The metrics ``esrgan eval`` and ``esrgan sweep`` compute, by name, with what each one needs.

* ``psnr``, ``ssim``: on Y (BT.601, MATLAB ``rgb2ycbcr``), against the HR image.
* ``psnr-rgb``, ``ssim-rgb``: on R, G and B, against the HR image.
* ``niqe``: no reference (MATLAB's / BasicSR's NIQE on Y with the standard pristine model).
* ``lr-psnr``: LR consistency, no HR needed: the SR image downscaled with the MATLAB-compatible
  bicubic and compared on RGB with the LR input (a low value means the output does not explain
  its input: colour shifts, halos, invented structure).
* ``pi``: the perceptual index ((10 - Ma) + NIQE) / 2, only with a user-supplied Ma model.

Every image is compared as 8-bit RGB or grey: 16-bit images are rounded to 8 bits and an alpha
channel is left out. ``crop_border`` pixels are removed from each side of the SR/HR images, and
``ceil(crop_border / scale)`` from the LR images for ``lr-psnr``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipelines.api import imresize
from training.evaluation.niqe import NiqeModel, niqe
from training.metrics import psnr, ssim

Needs = Literal["hr", "lr", "none"]


@dataclass(frozen=True)
class Measure:
    """One metric: its name, what it needs besides the SR image, and which way is better."""

    name: str
    needs: Needs
    higher_is_better: bool
    unit: str
    description: str


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("psnr", "hr", True, "dB", "PSNR on Y (BT.601) against HR"),
        Measure("ssim", "hr", True, "", "SSIM on Y (BT.601) against HR"),
        Measure("psnr-rgb", "hr", True, "dB", "PSNR on RGB against HR"),
        Measure("ssim-rgb", "hr", True, "", "SSIM on RGB against HR"),
        Measure("niqe", "none", False, "", "NIQE on Y (no reference; lower is better)"),
        Measure("lr-psnr", "lr", True, "dB", "PSNR on RGB of the bicubic-downscaled SR vs LR"),
        Measure(
            "pi", "none", False, "", "perceptual index ((10 - Ma) + NIQE) / 2, needs --ma-model"
        ),
    )
}
DEFAULT_MEASURES = ("psnr", "ssim", "niqe", "lr-psnr")


def parse_measures(text: str) -> tuple[str, ...]:
    """``"psnr,ssim"`` as a tuple of known metric names, or a one-line error naming the bad one."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if not names:
        raise ValueError("--metrics is empty; give some of " + ", ".join(MEASURES))
    for name in names:
        if name not in MEASURES:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(MEASURES)}")
    return names


def to_8bit_colour(image: np.ndarray) -> np.ndarray:
    """8-bit RGB (alpha left out) or grey: what every metric compares."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ValueError(f"expected 8- or 16-bit pixels, got {image.dtype}")
    return image


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey images as three equal channels, so Y metrics treat them as MATLAB's rgb2ycbcr does."""
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def lr_psnr(sr: np.ndarray, lr: np.ndarray, crop_border: int = 0) -> float:
    """LR consistency: PSNR (RGB) between the MATLAB-bicubic downscaled ``sr`` and ``lr``."""
    sr, lr = to_8bit_colour(sr), to_8bit_colour(lr)
    down = imresize(sr, output_shape=lr.shape[:2])
    lr_crop = math.ceil(crop_border * lr.shape[0] / sr.shape[0]) if crop_border else 0
    return psnr(down, lr, crop_border=lr_crop)


@dataclass(frozen=True)
class MeasureContext:
    """What the metrics share for a run: border crop, NIQE model and the optional Ma scorer."""

    crop_border: int
    niqe_model: NiqeModel
    ma_score: Callable[[np.ndarray], float] | None = None


def compute(
    name: str,
    sr: np.ndarray,
    context: MeasureContext,
    hr: np.ndarray | None = None,
    lr: np.ndarray | None = None,
) -> float:
    """Metric ``name`` of 8-bit ``sr`` (with ``hr`` or ``lr`` where it needs them)."""
    crop = context.crop_border
    if name in ("psnr", "ssim", "psnr-rgb", "ssim-rgb"):
        if hr is None:
            raise ValueError(f"{name} needs an HR image")
        fn = psnr if name.startswith("psnr") else ssim
        y = not name.endswith("-rgb")
        a, b = (_as_rgb(sr), _as_rgb(hr)) if y else (sr, hr)
        return fn(a, b, crop_border=crop, test_y_channel=y)
    if name == "niqe":
        return niqe(sr, crop, context.niqe_model)
    if name == "lr-psnr":
        if lr is None:
            raise ValueError("lr-psnr needs an LR image")
        return lr_psnr(sr, lr, crop)
    if name == "pi":
        if context.ma_score is None:
            raise ValueError("pi needs Ma's model (--ma-model FILE)")
        return ((10.0 - context.ma_score(sr)) + niqe(sr, crop, context.niqe_model)) / 2.0
    raise ValueError(f"unknown metric {name!r}")
