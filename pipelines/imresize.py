"""MATLAB-compatible bicubic ``imresize`` (antialiased when downscaling), in vectorised numpy.

Super-resolution papers make their low-resolution inputs with MATLAB's ``imresize(..., 'bicubic')``,
so reproducing it exactly matters for comparable numbers. Per axis, a sparse set of cubic-kernel
weights (``a = -0.5``, widened by ``1 / scale`` when shrinking) is gathered into an
``(out, in)`` matrix, with out-of-range taps mirrored as MATLAB does; the image is then multiplied
by one matrix per axis, the axis with the smaller scale first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_KERNEL_WIDTH = 4.0
"""Support of the bicubic kernel, in input pixels at scale 1."""


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5``, the kernel of MATLAB's 'bicubic'."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1.0)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1.0) & (absx <= 2.0))
    return inner + outer


def _mirror(indices: np.ndarray, length: int) -> np.ndarray:
    """Map 0-based indices onto ``[0, length)`` by symmetric reflection (edge sample repeated)."""
    period = 2 * length
    folded = np.mod(indices, period)
    return np.where(folded < length, folded, period - 1 - folded)


def contributions(
    in_length: int, out_length: int, scale: float, antialias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based input indices, each ``(out_length, taps)``, for resizing one axis.

    Follows MATLAB's ``contributions()``: output pixel ``x`` (1-based) samples input position
    ``u = x / scale + 0.5 * (1 - 1 / scale)``; when shrinking with antialiasing the kernel is
    stretched by ``1 / scale``. Rows of the weights sum to one.
    """
    stretch = antialias and scale < 1.0
    width = _KERNEL_WIDTH / scale if stretch else _KERNEL_WIDTH
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * cubic(distance * scale) if stretch else cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    zero_based = indices.astype(np.int64) - 1
    return weights, _mirror(zero_based, in_length)


def resize_matrix(in_length: int, out_length: int, scale: float) -> np.ndarray:
    """Dense ``(out_length, in_length)`` matrix that applies MATLAB's bicubic resize to one axis."""
    weights, indices = contributions(in_length, out_length, scale)
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_length)[:, None], indices.shape)
    np.add.at(matrix, (rows, indices), weights)
    return matrix


def _resize_axis(image: np.ndarray, axis: int, out_length: int, scale: float) -> np.ndarray:
    """Resize ``image`` (float64) along ``axis`` (0 = rows, 1 = columns) to ``out_length``."""
    matrix = resize_matrix(image.shape[axis], out_length, scale)
    moved = np.moveaxis(image, axis, 0)
    resized = np.tensordot(matrix, moved, axes=([1], [0]))
    return np.moveaxis(resized, 0, axis)


def _target(
    in_shape: tuple[int, int],
    scale: float | None,
    output_shape: Sequence[int] | None,
) -> tuple[tuple[float, float], tuple[int, int]]:
    """Per-axis scales and output size, from exactly one of ``scale`` / ``output_shape``."""
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale or output_shape")
    if scale is not None:
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"imresize: scale must be a positive finite number, got {scale!r}")
        size = (math.ceil(in_shape[0] * scale), math.ceil(in_shape[1] * scale))
        return (float(scale), float(scale)), size
    assert output_shape is not None
    if len(output_shape) != 2 or any(int(n) != n or n < 1 for n in output_shape):
        raise ValueError(
            f"imresize: output_shape must be two positive integers (rows, cols), got {output_shape!r}"
        )
    size = (int(output_shape[0]), int(output_shape[1]))
    return (size[0] / in_shape[0], size[1] / in_shape[1]), size


def _to_float(image: np.ndarray) -> np.ndarray:
    """Float64 copy of ``image``; unsigned integers are scaled to [0, 1] by their dtype maximum."""
    if image.dtype in (np.uint8, np.uint16):
        return image.astype(np.float64) / np.iinfo(image.dtype).max
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float64)
    raise ValueError(f"imresize: unsupported dtype {image.dtype} (use float, uint8 or uint16)")


def _from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert a float64 result back to ``dtype``, rounding and clipping integer types."""
    if dtype in (np.uint8, np.uint16):
        peak = np.iinfo(dtype).max
        return np.clip(np.round(image * peak), 0, peak).astype(dtype)
    return image


def imresize(
    image: np.ndarray,
    scale: float | None = None,
    output_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) image exactly as MATLAB's ``imresize(..., 'bicubic')``.

    Give ``scale`` (output size ``ceil(in * scale)``) or ``output_shape`` (rows, cols). Floats
    (assumed in [0, 1]) come back as float64, unclipped; uint8/uint16 come back rounded and clipped.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"imresize: expected an (H, W) or (H, W, C) array, got shape {image.shape}"
        )
    if image.size == 0:
        raise ValueError(f"imresize: empty image of shape {image.shape}")
    scales, size = _target((image.shape[0], image.shape[1]), scale, output_shape)
    result = _to_float(image)
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        result = _resize_axis(result, axis, size[axis], scales[axis])
    return _from_float(result, image.dtype)
