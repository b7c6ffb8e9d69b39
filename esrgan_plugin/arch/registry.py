"""The architectures the project builds itself, and lookups over their descriptors.

One table (:data:`ARCHITECTURES`, in detection order); every other module asks it, by name, by
configuration, by network, or by a checkpoint's keys.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from esrgan_plugin.arch import compact, rrdbnet, srresnet
from esrgan_plugin.arch.compact import CompactConfig
from esrgan_plugin.arch.descriptor import Architecture, KeyLayout, ModelNeeds
from esrgan_plugin.arch.rrdbnet import RRDBNetConfig
from esrgan_plugin.arch.spandrel.network import SpandrelConfig, SpandrelNetwork, architecture_for
from esrgan_plugin.arch.srresnet import SRResNetConfig
from esrgan_plugin.errors import CheckpointError

ModelConfig = RRDBNetConfig | SRResNetConfig | CompactConfig

ARCHITECTURES: tuple[Architecture, ...] = (
    rrdbnet.ARCHITECTURE,
    compact.ARCHITECTURE,
    srresnet.ARCHITECTURE,
)
"""Every architecture the project builds itself, in the order checkpoints are matched against
their key layouts; a checkpoint none of them matches is offered to spandrel
(:mod:`esrgan_plugin.arch.spandrel`)."""


def architecture_named(name: str) -> Architecture:
    """The descriptor called ``name`` (``RRDBNet``, ``SRVGGNetCompact``, ``SRResNet``)."""
    for arch in ARCHITECTURES:
        if arch.name == name:
            return arch
    raise KeyError(f"unknown architecture {name!r}")


def architecture_of(obj: object) -> Architecture:
    """The descriptor of a network (its class or a subclass) or of a configuration; a network
    loaded through spandrel is described by what spandrel said of it."""
    for arch in ARCHITECTURES:
        if isinstance(obj, (arch.module_class, arch.config_class)):
            return arch
    config = obj.config if isinstance(obj, SpandrelNetwork) else obj
    if isinstance(config, SpandrelConfig):
        return architecture_for(config)
    raise TypeError(f"{type(obj).__name__} is not a registered super-resolution architecture")


def model_needs(module: nn.Module) -> ModelNeeds:
    """The needs of a network built from a registered architecture."""
    return architecture_of(module).needs(module.config)


def build_network(config: object) -> nn.Module:
    """A freshly initialised network for ``config``."""
    return architecture_of(config).build(config)


def model_class(config: object) -> type[nn.Module]:
    """The network class a configuration builds."""
    return architecture_of(config).module_class


def parameter_count(config: object) -> int:
    """Parameters of the network ``config`` builds."""
    return architecture_of(config).parameters(config)


def detect_layout(
    state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> tuple[Architecture, KeyLayout]:
    """The first architecture and key layout whose keys are all present; a clear error otherwise."""
    for arch in ARCHITECTURES:
        for layout in arch.layouts:
            if layout.matches(state):
                return arch, layout
    sample = ", ".join(shown_key(k) for k in list(state)[:5])
    known = "; ".join(
        f"{layout.name} ({layout.description})" for arch in ARCHITECTURES for layout in arch.layouts
    )
    raise CheckpointError(
        f"{source}: unknown model: unknown key layout (first keys: {sample}); known layouts: {known}"
    )


def shown_key(key: str) -> str:
    """A tensor name for a one-line message: as is, or quoted when empty or not printable."""
    return key if key and key.isprintable() and key.strip() == key else repr(key)
