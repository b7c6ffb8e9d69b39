"""Every architecture the project does not build itself, loaded through spandrel.

:mod:`~esrgan_plugin.arch.spandrel.network` wraps a spandrel model in the project's descriptor
interface (no spandrel import); :mod:`~esrgan_plugin.arch.spandrel.load` asks spandrel to
recognise and build a state dict the project read itself. The project's own architectures
(RRDBNet, SRVGGNetCompact, SRResNet) are always matched first.
"""

from esrgan_plugin.arch.spandrel.network import (
    EXTRA_LICENCE,
    UNBOUNDED_RADIUS,
    SpandrelConfig,
    SpandrelNetwork,
    architecture_for,
)

__all__ = [
    "EXTRA_LICENCE",
    "UNBOUNDED_RADIUS",
    "SpandrelConfig",
    "SpandrelNetwork",
    "architecture_for",
]
