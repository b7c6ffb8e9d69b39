"""Configuration type -> network class, for every architecture the project builds."""

from __future__ import annotations

from torch import nn

from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact
from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
from esrgan_plugin.arch.srresnet import SRResNet, SRResNetConfig

ModelConfig = RRDBNetConfig | SRResNetConfig | CompactConfig

NETWORKS: dict[type, type[nn.Module]] = {
    RRDBNetConfig: RRDBNet,
    SRResNetConfig: SRResNet,
    CompactConfig: SRVGGNetCompact,
}
"""A new architecture adds its configuration and module class here (and its needs in needs.py)."""


def model_class(config: ModelConfig) -> type[nn.Module]:
    """The network class a configuration builds."""
    return NETWORKS[type(config)]


def build_network(config: ModelConfig) -> nn.Module:
    """A freshly initialised network for ``config``."""
    return model_class(config)(config)  # type: ignore[call-arg]


def parameter_count(config: ModelConfig) -> int:
    """Parameters of the network ``config`` builds, counted on the meta device (no memory)."""
    import torch

    with torch.device("meta"):
        module = build_network(config)
    return sum(p.numel() for p in module.parameters())
