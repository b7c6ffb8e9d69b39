"""What tiled inference needs to know about a network, as data: one small record per model.

Inference, tiling, the Dask stage and the model description read a network's scale, the
multiple its input sizes must be (pixel-unshuffle), its receptive radius and its widest
activation from here, so none of them needs to know which architecture it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from esrgan_plugin.arch import compact, rrdbnet
from esrgan_plugin.arch.compact import SRVGGNetCompact
from esrgan_plugin.arch.rrdbnet import RRDBNet
from esrgan_plugin.arch.srresnet import SRResNet


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


def _rrdbnet(module: RRDBNet) -> ModelNeeds:
    cfg = module.config
    return ModelNeeds(
        cfg.scale,
        cfg.in_channels,
        cfg.out_channels,
        cfg.unshuffle_factor,
        rrdbnet.receptive_radius(cfg),
        cfg.num_features,
    )


def _compact(module: SRVGGNetCompact) -> ModelNeeds:
    cfg = module.config
    return ModelNeeds(
        cfg.scale,
        cfg.in_channels,
        cfg.out_channels,
        1,
        compact.receptive_radius(cfg),
        cfg.num_features,
    )


def _srresnet(module: SRResNet) -> ModelNeeds:
    cfg = module.config
    return ModelNeeds(
        cfg.scale, cfg.in_channels, cfg.out_channels, 1, 2 * cfg.num_blocks + 4, cfg.num_features
    )


NEEDS: dict[type[nn.Module], Callable[[Any], ModelNeeds]] = {
    RRDBNet: _rrdbnet,
    SRVGGNetCompact: _compact,
    SRResNet: _srresnet,
}
"""Network class -> its needs; a new architecture adds one entry."""


def model_needs(module: nn.Module) -> ModelNeeds:
    """The needs of ``module`` (an instance of a registered architecture, or a subclass)."""
    for cls in type(module).__mro__:
        if cls in NEEDS:
            return NEEDS[cls](module)
    raise TypeError(f"{type(module).__name__} is not a registered super-resolution architecture")
