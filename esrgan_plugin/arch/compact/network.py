"""SRVGGNetCompact, Real-ESRGAN's small VGG-style generator (realesr-animevideov3, general-x4v3).

A plain stack of 3x3 convolutions with PReLU activations at the input resolution, a last conv
to ``out_channels * upscale**2`` channels, a pixel-shuffle, and the nearest-upsampled input
added: the network learns the residual over nearest-neighbour upscaling. Parameter names
follow Real-ESRGAN (``body.{2i}`` convs, ``body.{2i+1}`` PReLUs). ``output_scale`` adds a
final bicubic resize, as the ncnn packages that make x2/x3 from the x4 network do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class CompactConfig:
    """Hyperparameters of an SRVGGNetCompact; everything needed to rebuild it from tensors."""

    in_channels: int = 3
    out_channels: int = 3
    num_features: int = 64
    num_convs: int = 16
    upscale: int = 4
    output_scale: int = 0
    """Final scale after a bicubic resize of the network's output; 0 = no resize (``upscale``)."""

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "num_features", "upscale"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_convs < 0 or self.output_scale < 0:
            raise ValueError("num_convs and output_scale must be >= 0")
        if self.in_channels != self.out_channels:
            raise ValueError(
                f"the input is added to the output, so in_channels ({self.in_channels}) must "
                f"equal out_channels ({self.out_channels})"
            )

    @property
    def scale(self) -> int:
        """Overall upscaling factor of the network."""
        return self.output_scale or self.upscale

    @property
    def num_blocks(self) -> int:
        """The body's hidden convolutions (what ``num_blocks`` means for this architecture)."""
        return self.num_convs

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class SRVGGNetCompact(nn.Module):
    """conv + PReLU, ``num_convs`` x (conv + PReLU), conv, pixel-shuffle, + nearest-upsampled input."""

    def __init__(self, config: CompactConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CompactConfig()
        nf = config.num_features
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, nf, 3, 1, 1), nn.PReLU(nf)]
        for _ in range(config.num_convs):
            layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.PReLU(nf)]
        layers.append(nn.Conv2d(nf, config.out_channels * config.upscale**2, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(config.upscale)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.config.upscale
        out = self.upsampler(self.body(x))
        out = out + F.interpolate(x, scale_factor=up, mode="nearest")
        if self.config.output_scale and self.config.output_scale != up:
            height, width = x.shape[-2:]
            size = (height * self.config.output_scale, width * self.config.output_scale)
            out = F.interpolate(out, size=size, mode="bicubic", align_corners=False)
        return out


def receptive_radius(config: CompactConfig) -> int:
    """Input pixels that influence one output pixel: one per 3x3 conv, plus one for a resize."""
    return config.num_convs + 2 + (1 if config.output_scale else 0)
