"""A network loaded through spandrel, in the project's descriptor interface.

spandrel (chaiNNer's loader) recognises dozens of architectures from a state dict and describes
each loaded model: scale, channels, size requirements, fp16/bf16 support, tiling advice.
:class:`SpandrelNetwork` wraps its module so that it behaves like the project's own networks
(any input size: padded to the requirements and cropped back; one tensor out), and
:class:`SpandrelConfig` records what spandrel said, so that :func:`architecture_for` gives the
same :class:`~esrgan_plugin.arch.descriptor.Architecture` record every other module reads.

This module does not import spandrel (``esrgan --help`` and stage listings stay light);
:mod:`esrgan_plugin.arch.spandrel.load` does, when a file is not one of the project's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from esrgan_plugin.arch.descriptor import Architecture, ModelNeeds
from esrgan_plugin.arch.padding import crop_output, needs_padding, pad_to_needs
from esrgan_plugin.errors import CheckpointError

UNBOUNDED_RADIUS = 1_000_000
"""The receptive radius of a network with no known bound (attention, global pooling, custom
layers): tiles are never exact, and the halo is what the probe measures (``tiles.halo``)."""

EXTRA_LICENCE = (
    "non-commercial or copyleft: the architecture's code comes from spandrel_extra_arches; "
    "review its licence before commercial use"
)
"""The restriction ``esrgan info`` names for architectures from ``spandrel_extra_arches``."""

LOCAL_LEAVES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Mish,
    nn.ELU,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.PixelShuffle,
    nn.Upsample,
)
"""Layers that see one pixel (or, up-sampling, make an input pixel several): no context."""

Call = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SpandrelConfig:
    """What spandrel said about a loaded model, plus the shapes it was built from."""

    architecture: str
    """spandrel's architecture id (``SPAN``, ``SwinIR``, ``DAT``, ...)."""
    scale: int
    in_channels: int
    out_channels: int
    purpose: str
    """spandrel's purpose: SR, Restoration (x1), FaceSR."""
    tags: tuple[str, ...]
    min_size: int
    multiple_of: int
    square: bool
    tiling: str
    """spandrel's tiling advice: supported, discouraged or internal."""
    supports_half: bool
    supports_bfloat16: bool
    parameters: int
    feature_channels: int
    """The widest layer's output channels (activation memory estimates; a guess)."""
    receptive_radius: int
    """Sum of the convolutions' reaches for purely convolutional networks, else
    :data:`UNBOUNDED_RADIUS` (a guess; the halo is measured per weights anyway)."""
    extra: bool
    """The architecture comes from ``spandrel_extra_arches`` (restrictive licences)."""
    loader: str
    """``spandrel <version>``: which implementation built the network."""
    shapes: str
    """SHA-256 of the tensors' names and shapes: equal for two files only when spandrel builds
    the same network for both (interpolation needs that)."""

    @property
    def num_features(self) -> int:
        return self.feature_channels

    def to_dict(self) -> dict[str, object]:
        """The configuration as plain values (model file metadata, ``esrgan info``)."""
        out = asdict(self)
        out["tags"] = list(self.tags)
        return out


class SpandrelNetwork(nn.Module):
    """A spandrel module that accepts any input size and returns one tensor.

    Inputs are padded to the model's size requirements and the output cropped back (as
    spandrel's own call does); architectures whose module returns more than the image (FBCNN,
    GFPGAN, ...) are called the way spandrel calls them.
    """

    def __init__(self, model: nn.Module, config: SpandrelConfig, call: Call | None = None) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.call = call
        self.needs = needs(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not needs_padding(self.needs):
            return self._call(x)
        height, width = x.shape[-2:]
        padded = pad_to_needs(x, self.needs)
        out = self._call(padded)
        if padded is x:
            return out
        return crop_output(out, height, width, self.config.scale)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self.call(self.model, x) if self.call is not None else self.model(x)


def needs(config: SpandrelConfig) -> ModelNeeds:
    """The needs spandrel describes, in the project's terms."""
    return ModelNeeds(
        scale=config.scale,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        multiple_of=config.multiple_of,
        receptive_radius=config.receptive_radius,
        feature_channels=config.feature_channels,
        min_size=max(1, config.min_size),
        square=config.square,
        tiling_discouraged=config.tiling != "supported",
    )


def precisions(config: SpandrelConfig) -> frozenset[str]:
    """fp32, plus bf16 and fp16 where spandrel says the architecture supports them."""
    found = {"fp32"}
    if config.supports_bfloat16:
        found.add("bf16")
    if config.supports_half:
        found.add("fp16")
    return frozenset(found)


def architecture_for(config: SpandrelConfig) -> Architecture:
    """The descriptor of a network spandrel built (one record per architecture and abilities)."""
    return _architecture(config.architecture, precisions(config), config.extra)


@functools.cache
def _architecture(name: str, supported: frozenset[str], extra: bool) -> Architecture:
    return Architecture(
        name=name,
        module_class=SpandrelNetwork,
        config_class=SpandrelConfig,
        layouts=(),
        read_config=_no_config_reader,
        needs=needs,
        shape_keys=r"(?!)",
        precisions=supported,
        count_parameters=lambda config: int(config.parameters),
        licence=EXTRA_LICENCE if extra else "",
        describe_config=describe,
        exportable=False,
        builder=_no_builder,
        saved_state=_wrapped_state,
    )


def _wrapped_state(module: nn.Module) -> Mapping[str, torch.Tensor]:
    """The wrapped spandrel module's own tensors (a file spandrel and chaiNNer read back)."""
    assert isinstance(module, SpandrelNetwork)
    return module.model.state_dict()


def describe(config: SpandrelConfig) -> Mapping[str, object]:
    """What ``esrgan info`` shows of a spandrel model's configuration."""
    return {
        "through": config.loader,
        "purpose": config.purpose,
        "tags": ", ".join(config.tags),
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "tiling": config.tiling,
    }


def _no_config_reader(state: object, source: str, metadata: object) -> SpandrelConfig:
    raise CheckpointError(f"{source}: spandrel reads this architecture's hyperparameters itself")


def _no_builder(config: SpandrelConfig) -> nn.Module:
    raise CheckpointError(
        f"{config.architecture} networks are built by spandrel from a model file's tensors; "
        "load the file instead of building from a configuration"
    )


def receptive_radius(module: nn.Module) -> int:
    """Input pixels that can reach an output pixel, bounded for purely convolutional networks.

    Every stride-1 convolution adds ``dilation * (kernel - 1) / 2`` pixels of context (counted
    at the input resolution, an over-estimate for convolutions after up-sampling); any other
    layer with context (attention, pooling, a strided or transposed convolution, a layer this
    list does not know) makes the bound :data:`UNBOUNDED_RADIUS`. Operations done in a
    ``forward`` without a layer of their own are not seen: a guess, which the tiling test of
    each convolutional architecture checks.
    """
    total = 0
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            if any(s != 1 for s in layer.stride):
                return UNBOUNDED_RADIUS
            kernel = layer.kernel_size
            total += max(d * (k - 1) // 2 for d, k in zip(layer.dilation, kernel, strict=True))
        elif not list(layer.children()) and not isinstance(layer, LOCAL_LEAVES):
            return UNBOUNDED_RADIUS
    return total


def feature_channels(module: nn.Module) -> int:
    """The largest output width of any layer's weights (a stand-in for activation memory)."""
    widths = [int(p.shape[0]) for p in module.parameters() if p.ndim >= 2]
    return max(widths, default=64)


def shapes_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of the sorted tensor names and shapes."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(f"{key}:{tuple(state[key].shape)};".encode())
    return digest.hexdigest()
