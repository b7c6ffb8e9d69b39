"""A loaded model: the network plus its architecture's descriptor and what its file said.

This is the one object engines, tiling, Dask planning, export and ``esrgan info`` read: scale,
channels, size needs and precisions come from :attr:`LoadedModel.needs` and
:attr:`LoadedModel.arch`, never from the network's class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from esrgan_plugin.arch.descriptor import Architecture, ModelNeeds
from esrgan_plugin.arch.registry import architecture_of
from esrgan_plugin.arch.spandrel.network import UNBOUNDED_RADIUS
from esrgan_plugin.models.cards import ModelCard


@dataclass
class LoadedModel:
    """A ready network plus what was learnt about it from its file."""

    module: nn.Module
    layout: str
    config: Any
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""
    arch: Architecture | None = None
    """The architecture's descriptor (looked up from the network when not given)."""
    card: ModelCard | None = None
    """The model card beside the file (``NAME.json``, OpenModelDB's fields), if there is one."""

    def __post_init__(self) -> None:
        if self.arch is None:
            self.arch = architecture_of(self.module)

    @property
    def descriptor(self) -> Architecture:
        assert self.arch is not None
        return self.arch

    @property
    def architecture(self) -> str:
        return self.descriptor.name

    @property
    def needs(self) -> ModelNeeds:
        return self.descriptor.needs(self.config)

    @property
    def scale(self) -> int:
        return int(self.config.scale)

    @property
    def in_channels(self) -> int:
        return int(self.config.in_channels)

    @property
    def out_channels(self) -> int:
        return int(self.config.out_channels)

    @property
    def multiple_of(self) -> int:
        """Input sizes the network handles natively (it pads otherwise)."""
        return self.needs.multiple_of

    def describe(self) -> dict[str, object]:
        """JSON-ready summary, as printed by ``esrgan info --json``: the architecture's own
        hyperparameters (no fields of other architectures), its needs, the restriction on the
        architecture's code (``architecture_licence``), the model card's description, licence
        and author, and the file's metadata."""
        needs = self.needs
        out: dict[str, object] = {
            "architecture": self.architecture,
            "layout": self.layout,
            "scale": self.scale,
            **dict(self.descriptor.describe_config(self.config)),
            "multiple_of": needs.multiple_of,
            "min_size": needs.min_size,
            "square": needs.square,
            "tiling_discouraged": needs.tiling_discouraged,
            "receptive_radius": needs.receptive_radius
            if needs.receptive_radius < UNBOUNDED_RADIUS
            else "unbounded",
            "precisions": sorted(self.descriptor.precisions),
            "parameters": sum(p.numel() for p in self.module.parameters()),
        }
        if self.descriptor.licence:
            out["architecture_licence"] = self.descriptor.licence
        if self.card is not None:
            card = self.card.describe()
            for key in ("description", "licence", "author"):
                if key in card:
                    out[key] = card[key]
            out["card"] = card
        out["metadata"] = dict(self.metadata)
        out["source"] = self.source
        return out
