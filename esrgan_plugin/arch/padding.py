"""Input sizes a network accepts: padding an input to its needs, and the output cropped back.

A network's :class:`~esrgan_plugin.arch.descriptor.ModelNeeds` may ask for a minimum side, a
multiple of some factor, or a square input. Inputs are padded at the bottom and right (so the
kept output starts at the origin) by reflection, as RRDBNet pads for its pixel-unshuffle, or by
replicating the edge where the padding is not smaller than the side (reflection cannot reach that
far); the output is cropped to ``scale`` times the original size. For an input that only needs a
multiple this is exactly RRDBNet's own padding, so padding before such a network changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from esrgan_plugin.arch.descriptor import ModelNeeds


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


def pad_to_needs(x: torch.Tensor, needs: ModelNeeds) -> torch.Tensor:
    """``x`` (NCHW) padded at the bottom and right to the size ``needs`` accept (``x`` itself
    when it already fits)."""
    height, width = x.shape[-2:]
    padded_h, padded_w = padded_size(height, width, needs)
    pad_h, pad_w = padded_h - height, padded_w - width
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if min(height, width) > max(pad_h, pad_w) else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def crop_output(out: torch.Tensor, height: int, width: int, scale: int) -> torch.Tensor:
    """The part of a padded input's output that belongs to the original ``height`` x ``width``."""
    return out[..., : height * scale, : width * scale]


def padded_network(
    network: Callable[[torch.Tensor], torch.Tensor], needs: ModelNeeds
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network`` taking any input size: each input padded to what ``needs`` accept and the
    output cropped back (``network`` itself when no size can need padding)."""
    if not needs_padding(needs):
        return network

    def run(x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        padded = pad_to_needs(x, needs)
        out = network(padded)
        return out if padded is x else crop_output(out, height, width, needs.scale)

    return run
