"""int8 CPU inference for RRDBNet: static quantisation of the dense-block convolutions.

Engine: PyTorch's oneDNN int8 convolution kernels (``torch.ops.onednn.qconv2d_pointwise``,
the kernels PyTorch's x86 quantisation flow lowers to), driven directly so the graph stays ours:

- weights: int8, symmetric, one scale per output channel;
- activations: uint8 with one calibrated scale per dense block, shared by ``x, x1 .. x4`` so the
  dense concatenations stay plain byte copies (a quarter of the fp32 traffic);
- kept in higher precision (measured, see the README's int8 table): the residual stream (fp32
  sums), the head (``conv_first``, ``conv_body``, long skip) and the tail (up-sampling and HR
  convolutions), which :class:`~esrgan_plugin.engines.onednn.fused.FusedRRDBNet` runs in fp32 or
  bf16.

The activation ranges come from :mod:`esrgan_plugin.engines.calibration`.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from esrgan_plugin.arch.rrdbnet import NEGATIVE_SLOPE, RESIDUAL_SCALE, ResidualDenseBlock, RRDBNet
from esrgan_plugin.device import cpu_has_native_bf16
from esrgan_plugin.engines.calibration import ActivationRange, BlockRanges, Calibration
from esrgan_plugin.engines.onednn.fused import (
    CHANNELS_LAST,
    FP32,
    FusedDenseBlock,
    FusedRRDBNet,
    PrecisionPolicy,
)


def int8_available() -> bool:
    """True when this PyTorch has oneDNN's int8 convolutions (x86 CPU builds)."""
    ops = getattr(torch.ops, "onednn", None)
    return bool(
        torch.backends.mkldnn.is_available()
        and ops is not None
        and hasattr(ops, "qconv2d_pointwise")
        and hasattr(ops, "qconv_prepack")
    )


def quantize_uint8(x: torch.Tensor, x_range: ActivationRange) -> torch.Tensor:
    """float -> uint8 ``round(x / scale) + zero_point`` (clamped), channels_last.

    ``torch.quantize_per_tensor`` is one vectorised pass (six times faster here than the
    decomposed op sequence); its quantised-tensor type is deprecated, so the decomposed
    reference op is the fallback once it is gone.
    """
    x = x.contiguous(memory_format=CHANNELS_LAST)
    quantize = getattr(torch, "quantize_per_tensor", None)
    if quantize is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return quantize(x, x_range.scale, x_range.zero_point, torch.quint8).int_repr()
    importlib.import_module("torch.ao.quantization.fx._decomposed")  # registers the op

    return torch.ops.quantized_decomposed.quantize_per_tensor(
        x, x_range.scale, x_range.zero_point, 0, 255, torch.uint8
    )


class _Int8Conv:
    """A convolution with int8 per-channel weights, taking uint8 input of a fixed range."""

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, x_range: ActivationRange
    ) -> None:
        weight = weight.detach().float()
        self.w_scale = (weight.abs().amax((1, 2, 3)).clamp_min(1e-12) / 127.0).double()
        q = torch.round(weight / self.w_scale.float().view(-1, 1, 1, 1)).clamp_(-128, 127)
        self.w_zero = torch.zeros(weight.shape[0], dtype=torch.int64)
        self.x_scale, self.x_zero = x_range.scale, x_range.zero_point
        self.weight = torch.ops.onednn.qconv_prepack(
            q.to(torch.int8).contiguous(memory_format=CHANNELS_LAST),
            self.w_scale,
            self.x_scale,
            self.x_zero,
            [1, 1],
            [1, 1],
            [1, 1],
            1,
            None,
        )
        self.bias = bias.detach().float() if bias is not None else None

    def __call__(self, qx: torch.Tensor) -> torch.Tensor:
        """uint8 input -> float32 ``conv(x)`` (3x3, padding 1; bias included)."""
        return torch.ops.onednn.qconv2d_pointwise(
            qx,
            self.x_scale,
            self.x_zero,
            self.weight,
            self.w_scale,
            self.w_zero,
            self.bias,
            [1, 1],
            [1, 1],
            [1, 1],
            1,
            1.0,
            0,
            torch.float32,
            "none",
            [],
            "",
        )


class Int8DenseBlock:
    """``x + 0.2 * conv5(cat(x, x1..x4))`` with int8 convolutions and an fp32 residual.

    Each conv's weights are split by input: the part reading ``x`` (the residual stream, a
    narrow range) and the part reading the features ``x1 .. x_k`` (a range several times
    wider). ``x`` is quantised on its own fine scale and read once, by one conv that computes
    its contribution to all five convs (192 outputs); the features share one scale so their
    concatenation stays a byte copy. Measured on RealESRGAN_x4plus: one shared scale for both
    lost 6-8 dB (README, int8 table).
    """

    def __init__(self, block: ResidualDenseBlock, ranges: BlockRanges) -> None:
        convs = [getattr(block, f"conv{i}") for i in range(1, 6)]
        scales = [1.0, 1.0, 1.0, 1.0, RESIDUAL_SCALE]  # conv5 pre-scaled by beta
        nf = block.conv1.in_channels
        self.ranges = ranges
        self.widths = [c.out_channels for c in convs]
        x_weight = torch.cat([c.weight[:, :nf] * k for c, k in zip(convs, scales, strict=True)])
        x_bias = torch.cat([c.bias * k for c, k in zip(convs, scales, strict=True)])
        self.from_x = _Int8Conv(x_weight, x_bias, ranges.x)
        self.from_features = [
            _Int8Conv(c.weight[:, nf:] * k, None, ranges.features)
            for c, k in zip(convs[1:], scales[1:], strict=True)
        ]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        partial = self.from_x(quantize_uint8(x, self.ranges.x)).split(self.widths, 1)
        features = [quantize_uint8(F.leaky_relu(partial[0], NEGATIVE_SLOPE), self.ranges.features)]
        for k, conv in enumerate(self.from_features, start=1):
            pre = torch.add(partial[k], conv(torch.cat(features, 1)))
            if k == 4:
                return torch.add(x, pre)
            features.append(
                quantize_uint8(F.leaky_relu_(pre, NEGATIVE_SLOPE), self.ranges.features)
            )
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class Int8Options:
    """What the int8 engine keeps in higher precision (each choice measured in the README)."""

    rest: PrecisionPolicy = FP32
    """Precision of everything outside the quantised dense blocks."""
    keep_blocks: frozenset[int] = frozenset()
    """Dense-block indices (0 .. 3 * nb - 1) left in the ``rest`` precision."""
    keep_last: int = 0
    """This many dense blocks at the end of the trunk also stay in the ``rest`` precision."""

    def kept(self, blocks: int) -> frozenset[int]:
        return self.keep_blocks | frozenset(range(max(0, blocks - self.keep_last), blocks))


def default_int8_options() -> Int8Options:
    """The measured default: the last RRDB (3 dense blocks) unquantised, which the output is
    most sensitive to (+1 dB on RealESRGAN_x4plus); the tail in bf16 where the CPU computes
    bf16 natively (avx512_bf16/AMX), else fp32."""
    rest = INT8_REST_BF16 if cpu_has_native_bf16() else FP32
    return Int8Options(rest=rest, keep_last=3)


INT8_REST_BF16 = PrecisionPolicy(blocks=torch.bfloat16, tail_fp32=False)
"""Outside the int8 blocks: fp32 residual stream and head, bf16 tail (README, int8 table)."""


def quantize_rrdbnet(
    net: RRDBNet, calibration: Calibration, options: Int8Options | None = None
) -> FusedRRDBNet:
    """An inference plan of ``net`` with int8 dense blocks from ``calibration``."""
    options = options or Int8Options()
    if len(calibration.ranges) != 3 * net.config.num_blocks:
        raise ValueError(
            f"calibration has {len(calibration.ranges)} block ranges, the model "
            f"{3 * net.config.num_blocks} dense blocks"
        )
    kept = options.kept(len(calibration.ranges))

    def factory(index: int, block: ResidualDenseBlock):  # type: ignore[no-untyped-def]
        if index in kept:
            return FusedDenseBlock(block, options.rest.blocks)
        return Int8DenseBlock(block, calibration.ranges[index])

    return FusedRRDBNet(net, options.rest, block_factory=factory)
