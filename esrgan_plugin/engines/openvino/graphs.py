"""The graphs the OpenVINO engine exports: one part of a network, an RRDBNet whose dense blocks
need no concatenation, and the int8 RRDBNet written with fake-quantisation ops that OpenVINO's
low-precision transformations turn into int8 convolutions.

OpenVINO's CPU kernels (AMX and AVX-512) keep activations channels-last, where a concatenation
along channels is a copy: on RealESRGAN_x4plus at 192x192 the dense blocks' concatenations took
15% of the trunk's time in bf16 and 11% in fp32 (OpenVINO's per-node counters). A convolution of
a concatenation is the sum of one convolution per part, and OpenVINO fuses such sums into the
convolutions, so the float graphs split each conv by its input parts (trunk 12-13% faster in
both precisions, same arithmetic up to summation order) and the int8 graph splits its convs of
the block input (its uint8 feature concatenations are cheap).

The int8 graph quantises as our oneDNN int8 engine does
(:mod:`esrgan_plugin.engines.onednn.int8`: per-channel int8 weights; each dense block's input
``x`` on its own uint8 scale and its features on one shared scale; the head and the residual
stream unquantised), except that each feature is first stretched towards the shared range by
a factor folded into the convolutions (:func:`feature_stretch`), and on a calibration set with
more detailed images (:mod:`esrgan_plugin.engines.calibration`); the number of final dense
blocks kept in float and whether the tail's convolutions (up-sampling and ``conv_hr``, on their
calibrated input ranges) are quantised are chosen by the engine (``INT8_KEEP_LAST``,
``INT8_QUANTIZE_TAIL``).

The bf16 and int8 graphs also come in a column-masked form (:class:`ColumnMasked`): OpenVINO's
AMX kernels slow down at many widths (RealESRGAN_x4plus's bf16 trunk at height 64 took 3.6x
the time per column at width 449 as at 448, 3.2x at 455; int8 alike; fp32 not at all), so for
such widths the engine zero-pads the input to a multiple of 16 columns and runs graphs that
multiply every map a convolution reads by a mask that is 0 on the padding: each convolution
then sees zeros beyond the image, exactly as the unpadded network's zero padding
(bit-identical in fp32). The masks cost 3-6%, so widths that need no padding run the plain
graphs.
"""

from __future__ import annotations

import copy
from typing import cast, overload

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

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, getattr(self.graph, self.method)(*inputs))


class SummedDenseBlock(nn.Module):
    """A dense block as a sum of convolutions, one per (output conv, input part): the same
    function as :class:`~esrgan_plugin.arch.rrdbnet.ResidualDenseBlock` with no concatenation
    (``conv5`` carries the residual scale)."""

    def __init__(self, block: ResidualDenseBlock) -> None:
        super().__init__()
        convs = [getattr(block, f"conv{i}") for i in range(1, 6)]
        scales = [1.0, 1.0, 1.0, 1.0, RESIDUAL_SCALE]
        bounds = _part_bounds(block)
        self.convs = nn.ModuleList(
            nn.ModuleList(
                _FloatConv(
                    conv.weight[:, bounds[j] : bounds[j + 1]] * k,
                    conv.bias * k if j == 0 else None,
                )
                for j in range(n + 1)
            )
            for n, (conv, k) in enumerate(zip(convs, scales, strict=True))
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x]
        *growing, last = cast(list[nn.ModuleList], list(self.convs))
        for row in growing:
            parts.append(_masked(F.leaky_relu(_summed(row, parts), NEGATIVE_SLOPE), mask))
        return _masked(x + _summed(last, parts), mask)


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``x`` with the padding columns zeroed (``x`` itself without a mask)."""
    return x if mask is None else x * mask


def _summed(convs: nn.ModuleList, parts: list[torch.Tensor]) -> torch.Tensor:
    """One conv of the concatenation of ``parts``: the sum of each part's own conv."""
    total: torch.Tensor | None = None
    for conv, part in zip(convs, parts, strict=True):
        term = conv(part)
        total = term if total is None else total + term
    assert total is not None
    return total


def _part_bounds(block: ResidualDenseBlock) -> list[int]:
    """Channel bounds of the parts ``x, x1 .. x4`` in the widest concatenation."""
    nf, gc = block.conv1.in_channels, block.conv1.out_channels
    return [0, nf] + [nf + gc * (j + 1) for j in range(4)]


def summed_rrdbnet(net: RRDBNet) -> RRDBNet:
    """A copy of ``net`` whose dense blocks are :class:`SummedDenseBlock` (the float graphs)."""
    net = copy.deepcopy(net).eval()
    for rrdb in net.body:
        for name in ("rdb1", "rdb2", "rdb3"):
            setattr(rrdb, name, SummedDenseBlock(getattr(rrdb, name)))
    return net


class FakeQuantDenseBlock(nn.Module):
    """A dense block written with fake-quantisation ops (on activations and weights) that
    OpenVINO's low-precision transformations turn into int8 convolutions. Each conv's part
    reading the block input ``x`` is a conv of its own (the same per-channel weight scales as
    one conv of all five, with no split of its output: 7-17% faster trunks, measured); the
    features go through one concatenation per conv, on one uint8 range, each feature stretched
    to fill it where the calibration recorded its own range (:func:`feature_stretch`); the input
    is quantised on one range too, each channel scaled towards it (:func:`input_gain`). On a
    calibration without per-feature or per-channel ranges it computes exactly what
    :class:`esrgan_plugin.engines.onednn.int8.Int8DenseBlock` computes."""

    def __init__(self, block: ResidualDenseBlock, ranges: BlockRanges) -> None:
        super().__init__()
        convs = [getattr(block, f"conv{i}") for i in range(1, 6)]
        nf, gc = block.conv1.in_channels, block.conv1.out_channels
        stretch = feature_stretch(ranges)
        per_channel = channel_stretch(ranges, gc)  # each feature channel comes out stretched
        scales = [*per_channel.view(4, gc), torch.full((nf,), RESIDUAL_SCALE)]  # per out channel
        gain = input_gain(ranges, nf)
        self.register_buffer("x_gain", gain.view(1, nf, 1, 1))
        self.x_range, self.f_range = gained_range(ranges, gain), stretched_range(ranges, stretch)
        self.from_x = nn.ModuleList(
            FakeQuantConv(
                c.weight[:, :nf] * k[:, None, None, None] / gain[None, :, None, None],
                c.bias * k,
            )
            for c, k in zip(convs, scales, strict=True)
        )
        undo = 1.0 / per_channel  # in the concatenation's order
        self.from_features = nn.ModuleList(
            FakeQuantConv(
                c.weight[:, nf:]
                * undo[None, : c.in_channels - nf, None, None]
                * k[:, None, None, None],
                None,
            )
            for c, k in zip(convs[1:], scales[1:], strict=True)
        )

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The block input as the convs reading it see it: each channel gained, then uint8."""
        gained = x * cast(torch.Tensor, self.x_gain)
        r = self.x_range
        return torch.fake_quantize_per_tensor_affine(gained, r.scale, r.zero_point, 0, 255)

    def quantize_features(self, feature: torch.Tensor) -> torch.Tensor:
        """A (stretched) feature on the features' one uint8 range."""
        r = self.f_range
        return torch.fake_quantize_per_tensor_affine(feature, r.scale, r.zero_point, 0, 255)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        quantized = self.quantize_input(x)
        first = F.leaky_relu(self.from_x[0](quantized), NEGATIVE_SLOPE)
        features = [self.quantize_features(_masked(first, mask))]  # zero stays zero: uint8
        out = x  # ranges include 0 (their zero point), so the masked padding quantises to 0
        for k, conv in enumerate(self.from_features, start=1):
            pre = self.from_x[k](quantized) + conv(torch.cat(features, 1))
            if k == 4:
                out = _masked(x + pre, mask)
                break
            features.append(
                self.quantize_features(_masked(F.leaky_relu(pre, NEGATIVE_SLOPE), mask))
            )
        return out


MAX_FEATURE_STRETCH = 2.0
"""The largest factor a feature is stretched by (:func:`feature_stretch`). Measured on
RealESRGAN_x4plus with the engine's calibration set (2026-12-03): unbounded (up to 5.6x),
OpenVINO ran the 180 convolutions reading two or more features in bf16 instead of int8 (1.41x
the time); at 2, all 540 stay int8."""


def feature_stretch(ranges: BlockRanges) -> list[float]:
    """The factor each feature ``x1 .. x4`` is scaled by so that the features' one uint8 range
    fits it nearly as closely as its own range would: the shared maximum over its own, at most
    :data:`MAX_FEATURE_STRETCH` (1 where the calibration recorded no per-feature ranges). The
    conv making a feature carries the factor (LeakyReLU commutes with a positive scale) and
    each conv reading it the inverse: the same function, with one range for the concatenation,
    which OpenVINO runs as one int8 convolution input (each feature on its own range in the
    graph itself ran 1.36x slower: those convolutions fell back to bf16)."""
    if not ranges.parts:
        return [1.0] * 4
    return [
        min(MAX_FEATURE_STRETCH, ranges.features.high / part.high) if part.high > 0 else 1.0
        for part in ranges.parts
    ]


MAX_INPUT_GAIN = 2.0
"""The largest factor a channel of a dense block's input is scaled by (:func:`input_gain`), as
the features' :data:`MAX_FEATURE_STRETCH`."""


def input_gain(ranges: BlockRanges, channels: int) -> torch.Tensor:
    """The factor each channel of the block input ``x`` is scaled by before it is quantised,
    so that the one uint8 range covers each channel nearly as closely as its own range would:
    the largest channel magnitude over its own, at most :data:`MAX_INPUT_GAIN` (ones where the
    calibration recorded no channels). The convs reading ``x`` carry the inverse in their
    weights, so the function is unchanged; the residual sum keeps the unscaled ``x``. The scale
    and the quantisation make one OpenVINO FakeQuantize with per-channel input bounds."""
    if len(ranges.channels) != channels:
        return torch.ones(channels)
    magnitude = torch.tensor([max(r.high, -r.low) for r in ranges.channels], dtype=torch.float32)
    largest = float(magnitude.max())
    if largest <= 0:
        return torch.ones(channels)
    return torch.clamp(largest / magnitude.clamp_min(1e-12), max=MAX_INPUT_GAIN)


def gained_range(ranges: BlockRanges, gain: torch.Tensor) -> ActivationRange:
    """The uint8 range of the block input with each channel scaled by ``gain``."""
    if len(ranges.channels) != len(gain):
        return ranges.x
    low = min(0.0, min(r.low * float(g) for r, g in zip(ranges.channels, gain, strict=True)))
    high = max(r.high * float(g) for r, g in zip(ranges.channels, gain, strict=True))
    return ActivationRange(low, max(high, 0.0))


def channel_stretch(ranges: BlockRanges, growth: int) -> torch.Tensor:
    """:func:`feature_stretch` for each feature channel (``4 * growth``, in the concatenation's
    order). One factor per channel, from each channel's own range, was measured
    (RealESRGAN_x4plus, 2026-12-03): it lifted one cat crop 0.6 dB but cost Set14's LR images
    0.9-1.3 dB, whose features overrun the calibrated channels' ranges."""
    return torch.tensor(feature_stretch(ranges)).repeat_interleave(growth)


def stretched_range(ranges: BlockRanges, stretch: list[float]) -> ActivationRange:
    """The one uint8 range of the stretched features: the shared maximum, and the lowest
    stretched minimum."""
    if not ranges.parts:
        return ranges.features
    low = min(a * p.low for a, p in zip(stretch, ranges.parts, strict=True))
    return ActivationRange(min(low, 0.0), ranges.features.high)


class FakeQuantConv(nn.Module):
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
    """The int8 graph: ``net`` with fake-quantised dense blocks (the last ``keep_last`` summed in
    float) and
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
                block = getattr(rrdb, name)
                if index < blocks - keep_last:
                    setattr(rrdb, name, FakeQuantDenseBlock(block, calibration.ranges[index]))
                else:
                    setattr(rrdb, name, SummedDenseBlock(block))
        convs = [*net.up_convs(), net.conv_hr]
        if len(calibration.tail) != len(convs):
            raise ValueError(
                f"calibration has {len(calibration.tail)} tail ranges, the model {len(convs)} "
                "tail convolutions"
            )
        self.tail_ranges = calibration.tail
        quantized = FakeQuantConv if quantize_tail else _FloatConv
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

    def tail(self, feat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The up-sampling tail; with a column ``mask`` (at the trunk's resolution), the maps
        each conv reads are zero on the padding columns (:class:`ColumnMasked`)."""
        net = self.net
        for i, up in enumerate(self.ups):
            upsampled = F.interpolate(self._fq(feat, i), scale_factor=2, mode="nearest")
            mask = _doubled(mask)
            feat = _masked(F.leaky_relu(up(upsampled), NEGATIVE_SLOPE), mask)
        hr = F.leaky_relu(self.hr(self._fq(feat, len(self.ups))), NEGATIVE_SLOPE)
        return net.conv_last(_masked(hr, mask))


class ColumnMasked(nn.Module):
    """``trunk(x, mask)`` and ``tail(feat, mask)`` of a summed (float) or fake-quantised (int8)
    RRDBNet for inputs zero-padded on the right: ``mask`` (1, 1, 1, W at the trunk's
    resolution) is 1 on the image's columns and 0 on the padding, and every map a convolution
    reads is multiplied by it (doubled in width at each up-sampling), so every convolution sees
    zeros beyond the image, as the unpadded network's zero padding: the image's columns come
    out the same. The input must already be a multiple of the pixel-unshuffle factor."""

    def __init__(self, graph: RRDBNet | FakeQuantRRDBNet) -> None:
        super().__init__()
        self.graph = graph
        self.net = graph.net if isinstance(graph, FakeQuantRRDBNet) else graph

    def trunk(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        net = self.net
        factor = net.config.unshuffle_factor
        if factor > 1:
            x = F.pixel_unshuffle(x, factor)
        feat = net.conv_first(x) * mask
        body = feat
        for rrdb in net.body:
            out = body
            for block in (rrdb.rdb1, rrdb.rdb2, rrdb.rdb3):
                out = cast(nn.Module, block)(out, mask)
            body = torch.add(body, out, alpha=RESIDUAL_SCALE)  # both terms zero on the padding
        return (feat + net.conv_body(body)) * mask

    def tail(self, feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if isinstance(self.graph, FakeQuantRRDBNet):
            return self.graph.tail(feat, mask)
        net = self.net
        for conv in net.up_convs():
            mask = _doubled(mask)
            upsampled = F.interpolate(feat, scale_factor=2, mode="nearest")
            feat = F.leaky_relu(conv(upsampled), NEGATIVE_SLOPE) * mask
        return net.conv_last(F.leaky_relu(net.conv_hr(feat), NEGATIVE_SLOPE) * mask)


@overload
def _doubled(mask: torch.Tensor) -> torch.Tensor: ...
@overload
def _doubled(mask: None) -> None: ...
def _doubled(mask: torch.Tensor | None) -> torch.Tensor | None:
    """A column mask for a map up-sampled 2x (nearest): each column repeated."""
    if mask is None:
        return None
    return F.interpolate(mask, scale_factor=(1.0, 2.0), mode="nearest")
