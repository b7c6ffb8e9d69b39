"""One record per architecture: how its checkpoints look, how it is rebuilt, what inference needs.

Everything the project knows about an architecture lives in its descriptor, so loading, engines,
tiling, Dask planning, export and ``esrgan info`` ask one object and never test a class or a
name. Adding an architecture is one folder (network, key layouts, descriptor) and one line in
:mod:`esrgan_plugin.arch.registry`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from esrgan_plugin.arch.keys import StateDict
from esrgan_plugin.arch.needs import ModelNeeds
from esrgan_plugin.errors import CheckpointError

PRECISIONS = frozenset({"fp32", "bf16", "fp16"})
"""Float precisions a network may run in; int8 is an engine's, not an architecture's, ability."""


class NetworkConfig(Protocol):
    """What every architecture's configuration offers (a frozen dataclass in practice)."""

    @property
    def scale(self) -> int: ...
    @property
    def in_channels(self) -> int: ...
    @property
    def out_channels(self) -> int: ...
    @property
    def num_features(self) -> int: ...
    @property
    def num_blocks(self) -> int: ...
    def to_dict(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class KeyLayout:
    """A known key layout: how to recognise it and how to rename it to the canonical one."""

    name: str
    description: str
    required_keys: tuple[str, ...]
    to_canonical: Callable[[StateDict], StateDict] = dict
    also_when: frozenset[str] = frozenset()
    """Another sufficient set of keys (e.g. an RRDBNet with no blocks has no block keys)."""

    def matches(self, state: Mapping[str, torch.Tensor]) -> bool:
        keys = state.keys()
        return all(k in keys for k in self.required_keys) or bool(
            self.also_when and self.also_when <= set(keys)
        )


ConfigReader = Callable[[Mapping[str, torch.Tensor], str, Mapping[str, str]], Any]
"""(canonical tensors, source name, file metadata) -> the architecture's configuration."""


@dataclass(frozen=True)
class Architecture:
    """One architecture: key layouts, configuration from shapes, network, needs, precisions."""

    name: str
    module_class: type[nn.Module]
    config_class: type
    layouts: tuple[KeyLayout, ...]
    read_config: ConfigReader
    needs: Callable[[Any], ModelNeeds]
    shape_keys: str
    """Regex of the convolution weights ``read_config`` reads shapes from (checked to be 4-D)."""
    precisions: frozenset[str] = PRECISIONS
    count_parameters: Callable[[Any], int] | None = None
    """Parameter count from the configuration alone; None builds the network on the meta device."""
    match_ncnn: Callable[[list[Any]], Any] | None = None
    """Recognise the architecture in an ncnn graph's layer steps (``formats.ncnn_models``)."""
    licence: str = ""
    """A restriction on the architecture's code (e.g. non-commercial), shown by ``esrgan info``."""
    describe_config: Callable[[Any], Mapping[str, object]] = field(default=lambda c: c.to_dict())
    inference_forward: Callable[[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = field(
        default=lambda module: module
    )
    """How inference calls the network (RRDBNet: its HR tail in row strips, for bounded memory)."""
    exportable: bool = True
    """Its graph exports to ONNX with any height and width, reliably enough for an engine to
    compile the export unchecked (the openvino engine). False for architectures loaded through
    spandrel, whose attention windows may be traced as fixed shapes; ``esrgan export`` still
    tries them, checking the graph against onnxruntime before writing it."""
    builder: Callable[[Any], nn.Module] | None = None
    """How to build a network from a configuration alone; None: ``module_class(config)``."""
    saved_state: Callable[[nn.Module], Mapping[str, torch.Tensor]] = field(
        default=lambda module: module.state_dict()
    )
    """The tensors a model file written from the network holds (for a network loaded through
    spandrel: the wrapped network's own keys, which spandrel and chaiNNer read back)."""

    def build(self, config: Any) -> nn.Module:
        """A freshly initialised network for ``config``."""
        if self.builder is not None:
            return self.builder(config)
        return self.module_class(config)

    def parameters(self, config: Any) -> int:
        """Parameters of the network ``config`` builds (without building it where a formula exists)."""
        if self.count_parameters is not None:
            return self.count_parameters(config)
        with torch.device("meta"):
            return sum(p.numel() for p in self.build(config).parameters())

    def check_shapes(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        """The weights ``read_config`` reads are non-empty 4-D tensors (others: strict loading)."""
        pattern = re.compile(self.shape_keys)
        for key, tensor in state.items():
            if pattern.match(key) and (tensor.ndim != 4 or tensor.numel() == 0):
                raise CheckpointError(
                    f"{source}: tensor {key} has shape {tuple(tensor.shape)}, expected a non-empty "
                    "4-D convolution weight (out, in, kh, kw)"
                )


def conv_parameters(cin: int, cout: int) -> int:
    """Parameters of a 3x3 convolution with bias."""
    return cin * cout * 9 + cout
