"""Empirical bias correction of the int8 graph: each quantised convolution's bias lowered by
part of its mean output error on the calibration crops.

Quantising a convolution's weights and its uint8 input shifts the mean of its output, channel
by channel: weight errors times inputs whose mean is not zero (LeakyReLU features), rounding of
skewed distributions, and the shifts carried in from the blocks before. Run beside the float
network on the calibration crops, block after block in order, each quantised dense block's five
convolutions have their bias lowered by :data:`BIAS_CORRECTION` times the mean, over every crop
and pixel, of their quantised output minus their float output (the empirical bias correction
of Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and Bias
Correction"). Only the biases change, so the graph runs as fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from esrgan_plugin.arch.rrdbnet import NEGATIVE_SLOPE, RESIDUAL_SCALE, pad_to_multiple
from esrgan_plugin.engines.openvino.graphs import (
    FakeQuantConv,
    FakeQuantDenseBlock,
    FakeQuantRRDBNet,
)

BIAS_CORRECTION = 0.5
"""The fraction of each convolution's measured mean error taken off its bias. Measured with the
openvino engine on RealESRGAN_x4plus and its default calibration (2026-12-04, AMD EPYC, AVX2;
dB against fp32, mean over ten test images: three cat crops, the whole cat, 192x192 crops of
coffee, the astronaut, immunohistochemistry and the motorcycle, Set14's baboon and comic LR):
uncorrected 42.15-42.23 dB over four roundings of the same graph (its biases moved by 1e-6),
half the error 42.31-42.40 (two runs), the whole error 42.22. Per image, a 1e-6 move of the
biases alone shifts the figures by 0.1-1 dB, so only such means tell graphs apart
(``docs/benchmarks.md``). The correction cost about 25 s once per model (the network's two paths
over the ten 64x64 crops on 2 cores; less now that it stops after the last quantised block),
when the graph is exported."""

Pair = tuple[list[torch.Tensor], list[torch.Tensor]]
"""Per crop, the quantised graph's and the float network's maps at one point of the trunk."""


def correct_biases(
    graph: FakeQuantRRDBNet,
    images: Sequence[torch.Tensor],
    strength: float = BIAS_CORRECTION,
) -> None:
    """Lower the biases of ``graph``'s quantised dense blocks, in place, by ``strength`` times
    each convolution's mean output error on ``images`` (NCHW crops of any sizes), in trunk
    order, each block measured with the corrected blocks before it."""
    net = graph.net
    factor = net.config.unshuffle_factor
    left = sum(isinstance(m, FakeQuantDenseBlock) for m in net.body.modules())
    with torch.no_grad():
        heads = []
        for x in images:
            if factor > 1:
                x = F.pixel_unshuffle(pad_to_multiple(x, factor), factor)
            heads.append(net.conv_first(x.float()))
        quantised, exact = list(heads), list(heads)
        for rrdb in net.body:
            if not left:  # the float blocks after the last quantised one have nothing to correct
                break
            out: Pair = (quantised, exact)
            for block in cast(list[nn.Module], [rrdb.rdb1, rrdb.rdb2, rrdb.rdb3]):
                if isinstance(block, FakeQuantDenseBlock):
                    out = _correct_block(block, out, strength)
                    left -= 1
                else:  # a float block: the same function on both paths
                    out = ([block(x) for x in out[0]], [block(x) for x in out[1]])
            quantised = [x + RESIDUAL_SCALE * o for x, o in zip(quantised, out[0], strict=True)]
            exact = [x + RESIDUAL_SCALE * o for x, o in zip(exact, out[1], strict=True)]


def _correct_block(block: FakeQuantDenseBlock, inputs: Pair, strength: float) -> Pair:
    """Correct one block's five biases in turn; its outputs on both paths."""
    x_quantised = [block.quantize_input(x) for x in inputs[0]]
    gain = cast(torch.Tensor, block.x_gain)
    x_exact = [x * gain for x in inputs[1]]  # the float path, in the block's scaling
    convs = cast(list[FakeQuantConv], list(block.from_x))
    reading_features = cast(list[FakeQuantConv], list(block.from_features))
    features_quantised: list[list[torch.Tensor]] = [[] for _ in x_quantised]
    features_exact: list[list[torch.Tensor]] = [[] for _ in x_exact]
    last = len(convs) - 1
    for k, conv in enumerate(convs):
        quantised = [conv(x) for x in x_quantised]
        exact = [F.conv2d(x, conv.weight, conv.bias, padding=1) for x in x_exact]
        if k:
            reads = reading_features[k - 1]
            for i, (fq, fe) in enumerate(zip(features_quantised, features_exact, strict=True)):
                quantised[i] = quantised[i] + reads(torch.cat(fq, 1))
                exact[i] = exact[i] + F.conv2d(torch.cat(fe, 1), reads.weight, padding=1)
        shift = strength * _channel_mean([q - e for q, e in zip(quantised, exact, strict=True)])
        assert conv.bias is not None  # the convs reading the block input carry the biases
        conv.bias.sub_(shift)
        quantised = [q - shift[None, :, None, None] for q in quantised]
        if k == last:
            return (
                [x + q for x, q in zip(inputs[0], quantised, strict=True)],
                [x + e for x, e in zip(inputs[1], exact, strict=True)],
            )
        for i, (q, e) in enumerate(zip(quantised, exact, strict=True)):
            features_quantised[i].append(block.quantize_features(F.leaky_relu(q, NEGATIVE_SLOPE)))
            features_exact[i].append(F.leaky_relu(e, NEGATIVE_SLOPE))
    raise AssertionError("a dense block has five convolutions")


def _channel_mean(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean of each channel over every map's batch and pixels."""
    total = sum(m.sum((0, 2, 3), dtype=torch.float64) for m in maps)
    count = sum(m.numel() // m.shape[1] for m in maps)
    return (total / count).float()  # type: ignore[union-attr]
