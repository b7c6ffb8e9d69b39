"""Input sizes a network accepts: padding an input to its needs, and the output cropped back.

A network's :class:`~esrgan_plugin.arch.descriptor.ModelNeeds` may ask for a minimum side, a
multiple of some factor, or a square input. Inputs are padded at the bottom and right (so the
kept output starts at the origin) by reflection, as RRDBNet pads for its pixel-unshuffle, or by
replicating the edge where the padding is not smaller than the side (reflection cannot reach that
far); the output is cropped to ``scale`` times the original size. For an input that only needs a
multiple this is exactly RRDBNet's own padding, so padding before such a network changes nothing.

Each function takes torch tensors or NumPy arrays (the fast start runs without torch); both pad
to the same values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from esrgan_plugin.arch.needs import ModelNeeds

Array = TypeVar("Array")


def padded_size(height: int, width: int, needs: ModelNeeds) -> tuple[int, int]:
    """The smallest (height, width) at least as large as the input that ``needs`` accept."""

    def side(value: int) -> int:
        value = max(value, needs.min_size)
        return -(-value // needs.multiple_of) * needs.multiple_of

    padded_h, padded_w = side(height), side(width)
    if needs.square:
        padded_h = padded_w = max(padded_h, padded_w)
    return padded_h, padded_w


def needs_padding(needs: ModelNeeds) -> bool:
    """Whether any input size can need padding for this network."""
    return needs.min_size > 1 or needs.multiple_of > 1 or needs.square


def pad_bottom_right(x: Array, pad_h: int, pad_w: int) -> Array:
    """``x`` (..., H, W) with ``pad_h`` rows and ``pad_w`` columns added at the bottom and right:
    reflected, or the edge replicated where reflection cannot reach that far."""
    if not (pad_h or pad_w):
        return x
    height, width = x.shape[-2:]  # type: ignore[attr-defined]
    reflect = min(height, width) > max(pad_h, pad_w)
    if isinstance(x, np.ndarray):
        widths = [(0, 0)] * (x.ndim - 2) + [(0, pad_h), (0, pad_w)]
        return np.pad(x, widths, mode="reflect" if reflect else "edge")  # type: ignore[return-value]
    from torch.nn import functional as F

    mode = "reflect" if reflect else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)  # type: ignore[arg-type,return-value]


def pad_to_needs(x: Array, needs: ModelNeeds) -> Array:
    """``x`` (NCHW) padded at the bottom and right to the size ``needs`` accept (``x`` itself
    when it already fits)."""
    height, width = x.shape[-2:]  # type: ignore[attr-defined]
    padded_h, padded_w = padded_size(height, width, needs)
    return pad_bottom_right(x, padded_h - height, padded_w - width)


def crop_output(out: Array, height: int, width: int, scale: int) -> Array:
    """The part of a padded input's output that belongs to the original ``height`` x ``width``."""
    return out[..., : height * scale, : width * scale]  # type: ignore[index,no-any-return]


def padded_network(
    network: Callable[[Array], Array], needs: ModelNeeds
) -> Callable[[Array], Array]:
    """``network`` taking any input size: each input padded to what ``needs`` accept and the
    output cropped back (``network`` itself when no size can need padding)."""
    if not needs_padding(needs):
        return network

    def run(x: Array) -> Array:
        height, width = x.shape[-2:]  # type: ignore[attr-defined]
        padded = pad_to_needs(x, needs)
        out = network(padded)
        return out if padded is x else crop_output(out, height, width, needs.scale)

    return run
