"""Pure network definitions (no loading logic): RRDBNet (ESRGAN) and SRResNet."""

from esrgan_plugin.arch.rrdbnet import RRDB, ResidualDenseBlock, RRDBNet, RRDBNetConfig
from esrgan_plugin.arch.srresnet import SRResNet, SRResNetConfig

__all__ = ["RRDB", "RRDBNet", "RRDBNetConfig", "ResidualDenseBlock", "SRResNet", "SRResNetConfig"]
