"""SRResNet, the paper's other generator setting (SRGAN's network with BN removed).

Used for the BN-removal ablation of section 4.2: ``batch_norm=True`` gives SRGAN's residual
block (conv-BN-ReLU-conv-BN), the default ``False`` the BN-free block of EDSR/ESRGAN. Layout
and names follow BasicSR's ``MSRResNet``: 3x3 convs, pixel-shuffle up-steps, and a global
bilinear skip from the input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from esrgan_plugin.arch.rrdbnet.network import initialize_weights


@dataclass(frozen=True)
class SRResNetConfig:
    """Hyperparameters of an SRResNet."""

    in_channels: int = 3
    out_channels: int = 3
    num_features: int = 64
    num_blocks: int = 16
    scale: int = 4
    batch_norm: bool = False

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4, 8):
            raise ValueError(f"scale must be 2, 3, 4 or 8, got {self.scale}")

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with identity skip; BN after each conv only when asked (SRGAN)."""

    def __init__(self, num_features: int, batch_norm: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(num_features) if batch_norm else nn.Identity()
        self.bn2 = nn.BatchNorm2d(num_features) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


class SRResNet(nn.Module):
    """SRResNet generator (16 residual blocks by default) with pixel-shuffle upsampling."""

    def __init__(self, config: SRResNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SRResNetConfig()
        nf = config.num_features
        self.conv_first = nn.Conv2d(config.in_channels, nf, 3, 1, 1)
        self.body = nn.Sequential(
            *(ResidualBlock(nf, config.batch_norm) for _ in range(config.num_blocks))
        )
        steps = [3] if config.scale == 3 else [2] * (config.scale.bit_length() - 1)
        self.upsample = nn.ModuleList(nn.Conv2d(nf, nf * f * f, 3, 1, 1) for f in steps)
        self.shuffle_factors = steps
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, config.out_channels, 3, 1, 1)
        initialize_weights(self, scale=0.1)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.leaky_relu(self.conv_first(x), 0.1)
        out = self.body(feat)
        for conv, factor in zip(self.upsample, self.shuffle_factors, strict=True):
            out = F.leaky_relu(F.pixel_shuffle(conv(out), factor), 0.1)
        out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.1))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        if base.shape[1] != out.shape[1]:
            base = base.mean(1, keepdim=True).expand_as(out)
        return out + base
