"""Row strips for the up-sampling tail: the same output, with high-resolution memory bounded.

After the trunk, an x4 RRDBNet holds three 64-channel feature maps at 16 times the input's
pixels (the up-sampling convs, ``conv_hr``): about 85% of its peak activation memory. Those
layers see only a few low-resolution rows of context (each 3x3 conv at 2x or 4x resolution
reaches half or a quarter of an LR pixel; the whole tail at most 1.25), so running them on row
strips of the trunk's output with :data:`TAIL_HALO` extra rows on each side and keeping each
strip's own rows gives exactly the whole-image result, with the high-resolution maps only a
strip tall. The trunk (which needs the large halo) then sets the memory a tile costs, and
default tiles can be several times larger for the same budget.

Strips work on torch tensors and on NumPy arrays (the OpenVINO graphs run on arrays).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

Array = TypeVar("Array")

TAIL_HALO = 2
"""LR rows of context each strip gets on both sides: >= the tail's receptive radius (1.25)."""

TAIL_STRIP_ELEMENTS = 1 << 24
"""Target elements of one high-resolution feature map per strip (64 MiB in fp32)."""

MIN_STRIP_ROWS = 16
"""Strips are at least this many LR rows tall, so their halo adds at most 25% to the tail."""


def strip_rows(width: int, channels: int, scale: int, elements: int | None = None) -> int:
    """LR rows per strip so one ``channels``-deep map at ``scale`` x has about ``elements``
    (default :data:`TAIL_STRIP_ELEMENTS`), and at least :data:`MIN_STRIP_ROWS`."""
    target = TAIL_STRIP_ELEMENTS if elements is None else elements
    return max(MIN_STRIP_ROWS, target // max(1, width * scale * scale * channels))


def map_row_strips(
    fn: Callable[[Array], Array],
    x: Array,
    scale: int,
    rows: int,
    halo: int = TAIL_HALO,
) -> Array:
    """``fn(x)`` for an ``fn`` that upscales NCHW by ``scale`` and sees ``halo`` rows, in strips.

    Each strip covers ``rows`` rows of ``x`` plus ``halo`` rows either side (clipped to the
    image); only the strip's own rows of its output are kept. One call when ``x`` is short.
    """
    height = x.shape[-2]  # type: ignore[attr-defined]
    if height <= rows:
        return fn(x)
    out: Any = None
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        low, high = max(0, start - halo), min(height, stop + halo)
        part: Any = fn(x[..., low:high, :])  # type: ignore[index]
        if out is None:
            out = _empty_like(part, (*part.shape[:-2], height * scale, part.shape[-1]))
        keep = part[..., (start - low) * scale : (stop - low) * scale, :]
        out[..., start * scale : stop * scale, :] = keep
    assert out is not None
    return out  # type: ignore[no-any-return]


def _empty_like(part: Any, shape: tuple[int, ...]) -> Any:
    """An uninitialised array or tensor of ``shape`` with ``part``'s type, dtype and layout."""
    if isinstance(part, np.ndarray):
        return np.empty(shape, dtype=part.dtype)
    import torch

    return torch.empty(shape, dtype=part.dtype, device=part.device, memory_format=_format_of(part))


def _format_of(x: torch.Tensor) -> torch.memory_format:
    import torch

    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1:
        return torch.channels_last
    return torch.contiguous_format
