"""The graphs the OpenVINO engine exports: one part of a network, and the int8 RRDBNet written
with fake-quantisation ops that OpenVINO's low-precision transformations turn into int8 convolutions.

The int8 graph quantises exactly where our oneDNN int8 engine does
(:mod:`esrgan_plugin.engines.onednn.int8`: per-channel int8 weights; each dense block's input
``x`` on its own uint8 scale and its features on one shared scale; the last RRDB, the head and
the residual stream unquantised), on the same calibration, plus the tail's convolutions
(up-sampling and ``conv_hr``, on their calibrated input ranges: measured 1-6% faster, 0.2-1.6 dB
lower).
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from esrgan_plugin.arch.rrdbnet import NEGATIVE_SLOPE, RESIDUAL_SCALE, ResidualDenseBlock, RRDBNet
from esrgan_plugin.engines.calibration import ActivationRange, BlockRanges, Calibration


class Part(nn.Module):
    """One method of a graph module (``trunk`` or ``tail``) as a module to export."""

    def __init__(self, graph: nn.Module, method: str) -> None:
        super().__init__()
        self.graph, self.method = graph, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, getattr(self.graph, self.method)(x))


class FakeQuantDenseBlock(nn.Module):
    """A dense block computing exactly what :class:`esrgan_plugin.engines.onednn.int8.Int8DenseBlock` computes,
    written with fake-quantisation ops (on activations and weights) that OpenVINO's
    low-precision transformations turn into int8 convolutions."""

    def __init__(self, block: ResidualDenseBlock, ranges: BlockRanges) -> None:
        super().__init__()
        convs = [getattr(block, f"conv{i}") for i in range(1, 6)]
        scales = [1.0, 1.0, 1.0, 1.0, RESIDUAL_SCALE]
        nf = block.conv1.in_channels
        self.widths = [c.out_channels for c in convs]
        self.x_range, self.f_range = ranges.x, ranges.features
        self.from_x = _FakeQuantConv(
            torch.cat([c.weight[:, :nf] * k for c, k in zip(convs, scales, strict=True)]),
            torch.cat([c.bias * k for c, k in zip(convs, scales, strict=True)]),
        )
        self.from_features = nn.ModuleList(
            _FakeQuantConv(c.weight[:, nf:] * k, None)
            for c, k in zip(convs[1:], scales[1:], strict=True)
        )

    def _fq(self, x: torch.Tensor, r: ActivationRange) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, r.scale, r.zero_point, 0, 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.from_x(self._fq(x, self.x_range)).split(self.widths, 1)
        features = [self._fq(F.leaky_relu(parts[0], NEGATIVE_SLOPE), self.f_range)]
        out = x
        for k, conv in enumerate(self.from_features, start=1):
            pre = parts[k] + conv(torch.cat(features, 1))
            if k == 4:
                out = x + pre
                break
            features.append(self._fq(F.leaky_relu(pre, NEGATIVE_SLOPE), self.f_range))
        return out


class _FakeQuantConv(nn.Module):
    """A 3x3 conv whose weight is fake-quantised per output channel (symmetric int8) when run."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        weight = weight.detach().float()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = (
            None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)
        )
        self.register_buffer("w_scale", weight.abs().amax((1, 2, 3)).clamp_min(1e-12) / 127.0)
        self.register_buffer("w_zero", torch.zeros(weight.shape[0], dtype=torch.int32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero = cast(torch.Tensor, self.w_scale), cast(torch.Tensor, self.w_zero)
        weight = torch.fake_quantize_per_channel_affine(self.weight, scale, zero, 0, -128, 127)
        return F.conv2d(x, weight, self.bias, padding=1)


class _FloatConv(nn.Module):
    """A 3x3 conv kept in float (the tail when it is not quantised)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().float(), requires_grad=False)
        self.bias = (
            None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=1)


class FakeQuantRRDBNet(nn.Module):
    """The int8 graph: ``net`` with fake-quantised dense blocks (but the last ``keep_last``) and
    a fake-quantised tail (each up-sampling conv and ``conv_hr`` reads uint8 on its calibrated
    range; ``conv_last`` stays in float). The input must be a multiple of the pixel-unshuffle
    factor (the engine pads)."""

    def __init__(
        self, net: RRDBNet, calibration: Calibration, keep_last: int, quantize_tail: bool = True
    ) -> None:
        super().__init__()
        self.quantize_tail = quantize_tail
        self.net = net = copy.deepcopy(net).eval()
        blocks = 3 * net.config.num_blocks
        for i, rrdb in enumerate(net.body):
            for j, name in enumerate(("rdb1", "rdb2", "rdb3")):
                index = 3 * i + j
                if index < blocks - keep_last:
                    block = FakeQuantDenseBlock(getattr(rrdb, name), calibration.ranges[index])
                    setattr(rrdb, name, block)
        convs = [*net.up_convs(), net.conv_hr]
        if len(calibration.tail) != len(convs):
            raise ValueError(
                f"calibration has {len(calibration.tail)} tail ranges, the model {len(convs)} "
                "tail convolutions"
            )
        self.tail_ranges = calibration.tail
        quantized = _FakeQuantConv if quantize_tail else _FloatConv
        self.ups = nn.ModuleList(quantized(c.weight, c.bias) for c in net.up_convs())
        self.hr = quantized(net.conv_hr.weight, net.conv_hr.bias)

    def _fq(self, x: torch.Tensor, index: int) -> torch.Tensor:
        if not self.quantize_tail:
            return x
        r = self.tail_ranges[index]
        return torch.fake_quantize_per_tensor_affine(x, r.scale, r.zero_point, 0, 255)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.trunk(x)  # its dense blocks are the fake-quantised ones

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.trunk(x))

    def tail(self, feat: torch.Tensor) -> torch.Tensor:
        net = self.net
        for i, up in enumerate(self.ups):
            upsampled = F.interpolate(self._fq(feat, i), scale_factor=2, mode="nearest")
            feat = F.leaky_relu(up(upsampled), NEGATIVE_SLOPE)
        hr = F.leaky_relu(self.hr(self._fq(feat, len(self.ups))), NEGATIVE_SLOPE)
        return net.conv_last(hr)
