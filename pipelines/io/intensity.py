"""Per-channel intensity windows: integer or float samples to [0, 1] float32 and back, reversibly.

Scientific images store physical quantities (photon counts in uint16, intensities in float),
not display values. Stages work on [0, 1]; a window (lo, hi) per channel maps ``lo`` to 0 and
``hi`` to 1, and the inverse brings results back to the input's units and dtype (rounded and
clipped to the dtype's range for integers). Values outside the window are kept by the mapping
itself; a stage that clips to [0, 1] (a network) clips them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Window = tuple[float, float]


def dtype_window(dtype: str) -> Window:
    """The full range of an integer dtype; [0, 1] for floats."""
    kind = np.dtype(dtype)
    if np.issubdtype(kind, np.integer):
        info = np.iinfo(kind)
        return (float(info.min), float(info.max))
    return (0.0, 1.0)


def normalise_block(block: np.ndarray, windows: Sequence[Window]) -> np.ndarray:
    """(H, W) or (H, W, C) samples -> float32 with each channel's window mapped to [0, 1]."""
    lo, span = _arrays(windows, block.ndim)
    return ((block.astype(np.float32) - lo) / span).astype(np.float32, copy=False)


def restore_block(block: np.ndarray, windows: Sequence[Window], dtype: str) -> np.ndarray:
    """The inverse of :func:`normalise_block`: back to the input's units, in ``dtype``."""
    lo, span = _arrays(windows, block.ndim)
    values = block.astype(np.float64) * span + lo
    kind = np.dtype(dtype)
    if np.issubdtype(kind, np.integer):
        info = np.iinfo(kind)
        return np.clip(np.rint(values), info.min, info.max).astype(kind)
    return values.astype(kind)


def normalise(data: Any, windows: Sequence[Window]) -> Any:
    """A lazy :func:`normalise_block` of a Dask array."""
    return data.map_blocks(
        normalise_block, tuple(windows), dtype=np.float32, meta=np.empty((0,) * data.ndim, "f4")
    )


def restore(data: Any, windows: Sequence[Window], dtype: str) -> Any:
    """A lazy :func:`restore_block` of a Dask array."""
    return data.map_blocks(
        restore_block,
        tuple(windows),
        dtype,
        dtype=np.dtype(dtype),
        meta=np.empty((0,) * data.ndim, dtype),
    )


def _arrays(windows: Sequence[Window], ndim: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([w[0] for w in windows], dtype=np.float64)
    span = np.array([w[1] - w[0] for w in windows], dtype=np.float64)
    if ndim == 2:
        return lo[:1].reshape(()), span[:1].reshape(())
    return lo, span
