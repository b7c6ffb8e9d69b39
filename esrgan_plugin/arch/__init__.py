"""Architectures, one folder each (network, checkpoint layouts, descriptor), and their registry.

The names below load on first use, so the torch-free modules of this package
(:mod:`~esrgan_plugin.arch.needs`, :mod:`~esrgan_plugin.arch.padding`,
:mod:`~esrgan_plugin.arch.strips`) import without PyTorch (the command's fast start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact
    from esrgan_plugin.arch.descriptor import Architecture, KeyLayout
    from esrgan_plugin.arch.needs import ModelNeeds
    from esrgan_plugin.arch.rrdbnet import RRDB, ResidualDenseBlock, RRDBNet, RRDBNetConfig
    from esrgan_plugin.arch.srresnet import SRResNet, SRResNetConfig

_EXPORTS = {
    "CompactConfig": "esrgan_plugin.arch.compact",
    "SRVGGNetCompact": "esrgan_plugin.arch.compact",
    "Architecture": "esrgan_plugin.arch.descriptor",
    "KeyLayout": "esrgan_plugin.arch.descriptor",
    "ModelNeeds": "esrgan_plugin.arch.needs",
    "RRDB": "esrgan_plugin.arch.rrdbnet",
    "ResidualDenseBlock": "esrgan_plugin.arch.rrdbnet",
    "RRDBNet": "esrgan_plugin.arch.rrdbnet",
    "RRDBNetConfig": "esrgan_plugin.arch.rrdbnet",
    "SRResNet": "esrgan_plugin.arch.srresnet",
    "SRResNetConfig": "esrgan_plugin.arch.srresnet",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'esrgan_plugin.arch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


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
