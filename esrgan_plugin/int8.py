"""int8 CPU inference for RRDBNet: static quantisation of the dense-block convolutions.

Engine: PyTorch's oneDNN int8 convolution kernels (``torch.ops.onednn.qconv2d_pointwise``,
the kernels PyTorch's x86 quantisation flow lowers to), driven directly so the graph stays ours:

- weights: int8, symmetric, one scale per output channel;
- activations: uint8 with one calibrated scale per dense block, shared by ``x, x1 .. x4`` so the
  dense concatenations stay plain byte copies (a quarter of the fp32 traffic);
- kept in higher precision (measured, see the README's int8 table): the residual stream (fp32
  sums), the head (``conv_first``, ``conv_body``, long skip) and the tail (up-sampling and HR
  convolutions), which :class:`~esrgan_plugin.arch.rrdbnet_fused.FusedRRDBNet` runs in fp32 or
  bf16.

Calibration runs the fp32 network over a few images and records each dense block's activation
range (minimum and maximum: on RealESRGAN_x4plus the 99.99th percentile clipped values the
output needs, 35.7 dB against 41.7 dB). Results are cached per model weights and calibration
set (:mod:`esrgan_plugin.calibration`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from esrgan_plugin.arch.rrdbnet import NEGATIVE_SLOPE, RESIDUAL_SCALE, ResidualDenseBlock, RRDBNet
from esrgan_plugin.arch.rrdbnet_fused import (
    CHANNELS_LAST,
    FP32,
    FusedRRDBNet,
    PrecisionPolicy,
)

CALIBRATION_VERSION = 3
"""Bumped when the calibration method changes, so cached ranges are recomputed (3: the tail's
input ranges too)."""


def int8_available() -> bool:
    """True when this PyTorch has oneDNN's int8 convolutions (x86 CPU builds)."""
    ops = getattr(torch.ops, "onednn", None)
    return bool(
        torch.backends.mkldnn.is_available()
        and ops is not None
        and hasattr(ops, "qconv2d_pointwise")
        and hasattr(ops, "qconv_prepack")
    )


@dataclass(frozen=True)
class ActivationRange:
    """The float range ``[low, high]`` one dense block's uint8 activations cover."""

    low: float
    high: float

    @property
    def scale(self) -> float:
        return max(self.high - self.low, 1e-8) / 255.0

    @property
    def zero_point(self) -> int:
        return int(np.clip(round(-self.low / self.scale), 0, 255))


@dataclass(frozen=True)
class BlockRanges:
    """A dense block's two uint8 ranges: its input ``x`` and its features ``x1 .. x4``."""

    x: ActivationRange
    features: ActivationRange


@dataclass(frozen=True)
class Calibration:
    """Per-dense-block activation ranges for one model and one calibration set."""

    ranges: tuple[BlockRanges, ...]
    tail: tuple[ActivationRange, ...] = ()
    """Input ranges of the tail's convolutions (each up-sampling conv, then ``conv_hr``)."""
    version: int = CALIBRATION_VERSION

    def to_json(self) -> str:
        rows = [[r.x.low, r.x.high, r.features.low, r.features.high] for r in self.ranges]
        tail = [[r.low, r.high] for r in self.tail]
        return json.dumps({"version": self.version, "ranges": rows, "tail": tail})

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        ranges = tuple(
            BlockRanges(ActivationRange(float(a), float(b)), ActivationRange(float(c), float(d)))
            for a, b, c, d in data["ranges"]
        )
        tail = tuple(ActivationRange(float(a), float(b)) for a, b in data.get("tail", []))
        return cls(ranges, tail, int(data["version"]))


class _RangeObserver:
    """Minimum and maximum of each dense block's input and of its features (0 always inside)."""

    def __init__(self, blocks: int) -> None:
        self.bounds = [[0.0, 0.0, 0.0, 0.0] for _ in range(blocks)]

    def __call__(self, index: int, features: Sequence[torch.Tensor]) -> None:
        bounds = self.bounds[index]
        for i, f in enumerate(features):
            low, high = torch.aminmax(f.detach())
            at = 0 if i == 0 else 2
            bounds[at] = min(bounds[at], float(low))
            bounds[at + 1] = max(bounds[at + 1], float(high))


def calibrate(net: RRDBNet, images: Iterable[torch.Tensor]) -> Calibration:
    """Run the fp32 network on NCHW float images and record each dense block's ranges, and
    the input range of each of the tail's convolutions."""
    plan = FusedRRDBNet(net, FP32)
    observer = _RangeObserver(3 * net.config.num_blocks)
    tail = [[0.0, 0.0] for _ in range(len(plan.up_convs) + 1)]

    def observe(index: int, x: torch.Tensor) -> None:
        low, high = torch.aminmax(x)
        tail[index] = [min(tail[index][0], float(low)), max(tail[index][1], float(high))]

    def recording_tail(feat: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(plan.up_convs):
            observe(i, feat)
            feat = conv(feat, activate=True)
        observe(len(plan.up_convs), feat)
        return plan.conv_last(plan.conv_hr(feat, activate=True)).float()

    plan.tail = recording_tail  # type: ignore[method-assign]
    count = 0
    for image in images:
        plan(image, record=observer)
        count += 1
    if count == 0:
        raise ValueError("calibration needs at least one image")
    return Calibration(
        tuple(
            BlockRanges(ActivationRange(a, b), ActivationRange(c, d))
            for a, b, c, d in observer.bounds
        ),
        tuple(ActivationRange(a, b) for a, b in tail),
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
    from esrgan_plugin.device import cpu_has_native_bf16

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
    from esrgan_plugin.arch.rrdbnet_fused import FusedDenseBlock

    kept = options.kept(len(calibration.ranges))

    def factory(index: int, block: ResidualDenseBlock):  # type: ignore[no-untyped-def]
        if index in kept:
            return FusedDenseBlock(block, options.rest.blocks)
        return Int8DenseBlock(block, calibration.ranges[index])

    return FusedRRDBNet(net, options.rest, block_factory=factory)


def weights_digest(net: RRDBNet) -> str:
    """SHA-256 of the model's configuration and weights (the int8 cache key's model part)."""
    digest = hashlib.sha256(json.dumps(net.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()
