"""What a network needs of its inputs (size, multiple, channels) and what it costs: no PyTorch,
so the command's fast start (:mod:`esrgan_plugin.cli.fast_start`) can read it back from a record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelNeeds:
    """Size requirements and costs of a network, independent of its architecture."""

    scale: int
    in_channels: int
    out_channels: int
    multiple_of: int
    """Input height and width are padded to a multiple of this; tile starts fall on it."""
    receptive_radius: int
    """Input pixels around an output pixel's source that can change it (exact-tiling halo)."""
    feature_channels: int
    """Channels of the widest LR-resolution activation (memory estimates)."""
    min_size: int = 1
    """Smallest input height and width the network accepts (smaller inputs are padded)."""
    square: bool = False
    """The network only takes square inputs (non-square ones are padded)."""
    tiling_discouraged: bool = False
    """Tiles change the result more than for convolutional networks (attention windows)."""
