"""Row strips for the up-sampling tail: the same output, with high-resolution memory bounded.

After the trunk, an x4 RRDBNet holds three 64-channel feature maps at 16 times the input's
pixels (the up-sampling convs, ``conv_hr``): about 85% of its peak activation memory. Those
layers see only a few low-resolution rows of context (each 3x3 conv at 2x or 4x resolution
reaches half or a quarter of an LR pixel; the whole tail at most 1.25), so running them on row
strips of the trunk's output with :data:`TAIL_HALO` extra rows on each side and keeping each
strip's own rows gives exactly the whole-image result, with the high-resolution maps only a
strip tall. The trunk (which needs the large halo) then sets the memory a tile costs, and
default tiles can be several times larger for the same budget.

Strips work on torch tensors and, given an allocator, on NumPy arrays (the OpenVINO graphs run
on arrays). This module imports nothing outside the standard library: it is part of the
self-contained architecture file of a bioimage.io package, and of the fast start (no torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

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
    empty: Callable[[Any, tuple[int, ...]], Any] | None = None,
) -> Array:
    """``fn(x)`` for an ``fn`` that upscales NCHW by ``scale`` and sees ``halo`` rows, in strips.

    Each strip covers ``rows`` rows of ``x`` plus ``halo`` rows either side (clipped to the
    image); only the strip's own rows of its output are kept. One call when ``x`` is short.
    ``empty(part, shape)`` allocates the output like the strips' outputs (default: a torch
    tensor's, in its memory format).
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
            out = (empty or _empty_tensor_like)(
                part, (*part.shape[:-2], height * scale, part.shape[-1])
            )
        keep = part[..., (start - low) * scale : (stop - low) * scale, :]
        out[..., start * scale : stop * scale, :] = keep
    assert out is not None
    return out  # type: ignore[no-any-return]


def _empty_tensor_like(part: Any, shape: tuple[int, ...]) -> Any:
    """An uninitialised tensor of ``shape`` with ``part``'s dtype and device, channels-last when
    ``part`` is (a 4-D tensor of several channels whose NHWC view is contiguous)."""
    if part.dim() == 4 and part.shape[1] > 1 and part.permute(0, 2, 3, 1).is_contiguous():
        n, c, h, w = shape
        return part.new_empty((n, h, w, c)).permute(0, 3, 1, 2)
    return part.new_empty(shape)
