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


def _conv(cin: int, cout: int) -> int:
    return cin * cout * 9 + cout  # a 3x3 convolution with bias


def _rrdbnet_parameters(c: RRDBNetConfig) -> int:
    nf, gc = c.num_features, c.growth_channels
    dense = sum(_conv(nf + j * gc, gc) for j in range(4)) + _conv(nf + 4 * gc, nf)
    return (
        _conv(c.in_channels * c.unshuffle_factor**2, nf)
        + c.num_blocks * 3 * dense
        + (2 + c.num_upsample) * _conv(nf, nf)  # conv_body, up-steps, conv_hr
        + _conv(nf, c.out_channels)
    )


def _compact_parameters(c: CompactConfig) -> int:
    nf = c.num_features
    return (
        _conv(c.in_channels, nf)
        + (c.num_convs + 1) * nf  # PReLU slopes
        + c.num_convs * _conv(nf, nf)
        + _conv(nf, c.out_channels * c.upscale**2)
    )


def parameter_count(config: ModelConfig) -> int:
    """Parameters of the network ``config`` builds, without building it where a formula exists."""
    if isinstance(config, RRDBNetConfig):
        return _rrdbnet_parameters(config)
    if isinstance(config, CompactConfig):
        return _compact_parameters(config)
    return sum(p.numel() for p in build_network(config).parameters())
