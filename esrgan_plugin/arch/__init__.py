"""Architectures, one folder each (network, checkpoint layouts, descriptor), and their registry."""

from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact
from esrgan_plugin.arch.descriptor import Architecture, KeyLayout, ModelNeeds
from esrgan_plugin.arch.rrdbnet import RRDB, ResidualDenseBlock, RRDBNet, RRDBNetConfig
from esrgan_plugin.arch.srresnet import SRResNet, SRResNetConfig

__all__ = [
    "RRDB",
    "Architecture",
    "CompactConfig",
    "KeyLayout",
    "ModelNeeds",
    "RRDBNet",
    "RRDBNetConfig",
    "ResidualDenseBlock",
    "SRResNet",
    "SRResNetConfig",
    "SRVGGNetCompact",
]
