"""Pure network definitions (no loading logic): RRDBNet (ESRGAN), SRVGGNetCompact and SRResNet."""

from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact
from esrgan_plugin.arch.rrdbnet import RRDB, ResidualDenseBlock, RRDBNet, RRDBNetConfig
from esrgan_plugin.arch.srresnet import SRResNet, SRResNetConfig

__all__ = [
    "RRDB",
    "CompactConfig",
    "RRDBNet",
    "RRDBNetConfig",
    "ResidualDenseBlock",
    "SRResNet",
    "SRResNetConfig",
    "SRVGGNetCompact",
]
