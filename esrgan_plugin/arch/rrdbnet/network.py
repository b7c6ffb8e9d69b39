"""RRDBNet, the ESRGAN generator (Wang et al. 2018, section 3.1), as a pure ``nn.Module``.

Parameter names follow the BasicSR / Real-ESRGAN layout, which is the project's canonical
checkpoint layout: ``conv_first``, ``body.{i}.rdb{1..3}.conv{1..5}``, ``conv_body``,
``conv_up{1..n}``, ``conv_hr``, ``conv_last``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from esrgan_plugin.arch.strips import map_row_strips, strip_rows

RESIDUAL_SCALE = 0.2
"""The paper's residual scaling beta, used inside dense blocks and around each RRDB."""

NEGATIVE_SLOPE = 0.2
"""LeakyReLU slope used everywhere in the generator."""

_SCALE_LAYOUTS: dict[int, tuple[int, int]] = {
    # scale: (number of nearest x2 up-steps, pixel-unshuffle factor), as Real-ESRGAN builds them
    1: (2, 4),
    2: (2, 2),
    4: (2, 1),
    8: (3, 1),
}


@dataclass(frozen=True)
class RRDBNetConfig:
    """Hyperparameters of an RRDBNet; everything needed to rebuild it from a state dict."""

    in_channels: int = 3
    out_channels: int = 3
    num_features: int = 64
    num_blocks: int = 23
    growth_channels: int = 32
    num_upsample: int = 2
    unshuffle_factor: int = 1

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "num_features", "growth_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_blocks < 0 or self.num_upsample < 0:
            raise ValueError("num_blocks and num_upsample must be >= 0")
        if self.unshuffle_factor not in (1, 2, 4):
            raise ValueError(f"unshuffle_factor must be 1, 2 or 4, got {self.unshuffle_factor}")
        if 2**self.num_upsample % self.unshuffle_factor:
            raise ValueError("the up-steps must undo the pixel-unshuffle (scale below 1)")

    @property
    def scale(self) -> int:
        """Overall upscaling factor of the network."""
        return 2**self.num_upsample // self.unshuffle_factor

    @classmethod
    def for_scale(cls, scale: int, **kwargs: int) -> RRDBNetConfig:
        """The configuration ESRGAN/Real-ESRGAN use for ``scale`` (1, 2, 4 or 8)."""
        if scale not in _SCALE_LAYOUTS:
            raise ValueError(f"scale must be one of {sorted(_SCALE_LAYOUTS)}, got {scale}")
        num_upsample, unshuffle = _SCALE_LAYOUTS[scale]
        return cls(num_upsample=num_upsample, unshuffle_factor=unshuffle, **kwargs)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions; output ``beta * conv5 + x`` (no BN)."""

    def __init__(self, num_features: int = 64, growth_channels: int = 32) -> None:
        super().__init__()
        nf, gc = num_features, growth_channels
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu_(self.conv1(x), NEGATIVE_SLOPE)
        x2 = F.leaky_relu_(self.conv2(torch.cat((x, x1), 1)), NEGATIVE_SLOPE)
        x3 = F.leaky_relu_(self.conv3(torch.cat((x, x1, x2), 1)), NEGATIVE_SLOPE)
        x4 = F.leaky_relu_(self.conv4(torch.cat((x, x1, x2, x3), 1)), NEGATIVE_SLOPE)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return torch.add(x, x5, alpha=RESIDUAL_SCALE)


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, output ``beta * out + x``."""

    def __init__(self, num_features: int = 64, growth_channels: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_features, growth_channels)
        self.rdb2 = ResidualDenseBlock(num_features, growth_channels)
        self.rdb3 = ResidualDenseBlock(num_features, growth_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(x, self.rdb3(self.rdb2(self.rdb1(x))), alpha=RESIDUAL_SCALE)


class RRDBNet(nn.Module):
    """The ESRGAN generator: conv_first -> RRDB trunk -> conv_body (+ long skip) -> up-steps -> HR convs.

    Scale 1 and 2 pixel-unshuffle the input first, as Real-ESRGAN does; the input is
    reflect-padded to a multiple of the unshuffle factor and the output cropped back.
    """

    def __init__(self, config: RRDBNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RRDBNetConfig()
        nf, gc = config.num_features, config.growth_channels
        first_in = config.in_channels * config.unshuffle_factor**2
        self.conv_first = nn.Conv2d(first_in, nf, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(nf, gc) for _ in range(config.num_blocks)))
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        for i in range(1, config.num_upsample + 1):
            self.add_module(f"conv_up{i}", nn.Conv2d(nf, nf, 3, 1, 1))
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, config.out_channels, 3, 1, 1)
        initialize_weights(self.body, scale=0.1)

    @property
    def scale(self) -> int:
        return self.config.scale

    def up_convs(self) -> list[nn.Conv2d]:
        return [getattr(self, f"conv_up{i}") for i in range(1, self.config.num_upsample + 1)]

    def forward(self, x: torch.Tensor, tail_strips: bool = False) -> torch.Tensor:
        """Upscale NCHW ``x``; ``tail_strips`` runs the HR tail in row strips (same output,
        bounded memory: :mod:`esrgan_plugin.arch.strips`), for inference."""
        height, width = x.shape[-2:]
        feat = self.trunk(x)
        if tail_strips:
            tail_scale = 2**self.config.num_upsample
            rows = strip_rows(feat.shape[-1], feat.shape[1], tail_scale)
            out = map_row_strips(self.tail, feat, tail_scale, rows)
        else:
            out = self.tail(feat)
        if self.config.unshuffle_factor > 1:
            out = out[..., : height * self.scale, : width * self.scale]
        return out

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Input (pixel-unshuffled for x1/x2) -> features after the RRDBs and the long skip."""
        factor = self.config.unshuffle_factor
        if factor > 1:
            x = F.pixel_unshuffle(pad_to_multiple(x, factor), factor)
        feat = self.conv_first(x)
        return feat + self.conv_body(self.body(feat))

    def tail(self, feat: torch.Tensor) -> torch.Tensor:
        """The up-sampling steps and HR convs: trunk features -> output image."""
        for conv in self.up_convs():
            feat = F.leaky_relu(
                conv(F.interpolate(feat, scale_factor=2, mode="nearest")), NEGATIVE_SLOPE
            )
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), NEGATIVE_SLOPE))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom and right of ``x`` so height and width divide by ``multiple``
    (as :func:`esrgan_plugin.arch.padding.pad_bottom_right`, written here with torch alone so that
    this file and its imports make a self-contained architecture file for bioimage.io)."""
    pad_h = -x.shape[-2] % multiple
    pad_w = -x.shape[-1] % multiple
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if min(x.shape[-2:]) > max(pad_h, pad_w) else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


@torch.no_grad()
def initialize_weights(module: nn.Module, scale: float = 1.0) -> None:
    """Kaiming-normal init scaled by ``scale`` (the paper's smaller initialisation, 0.1 in RRDBs).

    Meta tensors (a skeleton about to receive a file's weights) are skipped: initialising them
    goes through PyTorch's slow reference path (about 4 s for RealESRGAN_x4plus) for nothing.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not m.weight.is_meta:
            nn.init.kaiming_normal_(m.weight)
            m.weight.mul_(scale)
            if m.bias is not None:
                m.bias.zero_()


def receptive_radius(config: RRDBNetConfig) -> int:
    """Radius, in input pixels, of the region that influences one output pixel.

    Every 3x3 conv adds one pixel of context at the resolution it runs at: 1 + 15 * nb + 1 in
    the LR trunk (scaled by the unshuffle factor), plus the up-step and HR convs, which run at
    higher resolution and add less than one LR pixel each.
    """
    trunk_convs = 2 + 15 * config.num_blocks
    lr_radius = trunk_convs * config.unshuffle_factor
    hr_radius = sum(1 / 2**i for i in range(1, config.num_upsample + 1))
    hr_radius += 2 / 2**config.num_upsample
    return lr_radius + math.ceil(hr_radius * config.unshuffle_factor)
