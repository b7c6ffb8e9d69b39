"""RRDBNet inference on the CPU with fused oneDNN convolutions: the same network, computed faster.

The canonical :class:`~esrgan_plugin.arch.rrdbnet.RRDBNet` stays the one layout for training,
checkpoints and parity; this module re-parametrises a copy of its weights for inference only:

- every convolution runs through oneDNN with its bias and LeakyReLU fused (one pass, not three);
- ``conv5`` of each dense block is pre-scaled by the residual scale 0.2 and, in fp32, fused with
  the residual addition, so ``x + 0.2 * conv5(...)`` is a single kernel;
- weights are cast and laid out (channels_last) once, not on every call as autocast does;
- a :class:`PrecisionPolicy` says which parts run in bf16: the dense-block convolutions carry
  nearly all the arithmetic, while the residual stream, the head (``conv_first``, ``conv_body``,
  long skip) and the tail (up-sampling and HR convolutions) are where bf16 rounding accumulates
  on trained weights, so they stay fp32 by default (README: "Precision on real weights").

The dense blocks are pluggable (``block_factory``) so the int8 engine can swap in quantised
blocks while sharing the head, tail and residual handling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from esrgan_plugin.arch.rrdbnet import (
    NEGATIVE_SLOPE,
    RESIDUAL_SCALE,
    RRDB,
    ResidualDenseBlock,
    RRDBNet,
    pad_to_multiple,
)
from esrgan_plugin.arch.strips import map_row_strips, strip_rows

CHANNELS_LAST = torch.channels_last
Recorder = Callable[[int, Sequence[torch.Tensor]], None]
"""Called with (dense-block index, [x, x1, x2, x3, x4]) while calibrating the int8 engine."""
TailRecorder = Callable[[int, torch.Tensor], None]
"""Called with (tail conv index, its input) while calibrating: each up-sampling conv, then conv_hr."""


def fused_ops_available() -> bool:
    """True when this PyTorch has oneDNN's fused convolution ops (x86/ARM CPU builds do)."""
    ops = getattr(torch.ops, "mkldnn", None)
    return bool(
        torch.backends.mkldnn.is_available()
        and ops is not None
        and hasattr(ops, "_convolution_pointwise")
    )


def bf16_convolutions_available() -> bool:
    """True when oneDNN runs bf16 convolutions on this CPU (PyTorch refuses them on CPUs
    without AVX-512 BW/VL/DQ or AVX-NE-CONVERT, e.g. AVX2-only ones); True where PyTorch
    cannot say."""
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    if check is None:
        return True
    try:
        return bool(check())
    except RuntimeError:
        return True


@dataclass(frozen=True)
class PrecisionPolicy:
    """Which dtype each part of the network computes in (the dense blocks carry ~92% of FLOPs)."""

    blocks: torch.dtype = torch.float32
    residual_fp32: bool = True
    """Keep the residual stream (dense-block inputs and sums) in fp32."""
    head_fp32: bool = True
    """Keep ``conv_first``, ``conv_body`` and the long skip in fp32."""
    tail_fp32: bool = True
    """Keep the up-sampling convs, ``conv_hr`` and ``conv_last`` in fp32."""

    def dtype(self, fp32_part: bool) -> torch.dtype:
        return torch.float32 if fp32_part else self.blocks

    @property
    def residual_dtype(self) -> torch.dtype:
        return self.dtype(self.residual_fp32)


FP32 = PrecisionPolicy()
BF16 = PrecisionPolicy(blocks=torch.bfloat16)
"""The measured bf16 default: bf16 dense blocks, everything that accumulates kept in fp32."""


class FusedConv:
    """One 3x3 (or any) convolution as a oneDNN call with bias and LeakyReLU fused."""

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype, scale: float = 1.0) -> None:
        weight = conv.weight.detach().float()
        bias = conv.bias.detach().float() if conv.bias is not None else None
        if scale != 1.0:
            weight = weight * scale
            bias = bias * scale if bias is not None else None
        self.dtype = dtype
        self.weight = weight.to(dtype).contiguous(memory_format=CHANNELS_LAST)
        self.bias = bias.to(dtype) if bias is not None else None
        self.padding = list(conv.padding)  # type: ignore[arg-type]
        self.stride = list(conv.stride)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype).contiguous(memory_format=CHANNELS_LAST)

    def __call__(self, x: torch.Tensor, activate: bool = False) -> torch.Tensor:
        """``conv(x)``, then LeakyReLU(0.2) when ``activate``; output in this conv's dtype."""
        return torch.ops.mkldnn._convolution_pointwise(
            self.prepare(x),
            self.weight,
            self.bias,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
            "leaky_relu" if activate else "none",
            [NEGATIVE_SLOPE] if activate else [],
            "",
        )

    def plus(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``other + conv(x)`` in ``other``'s dtype (one fused kernel when the dtypes agree)."""
        if other.dtype != self.dtype:
            return torch.add(other, self(x))
        return torch.ops.mkldnn._convolution_pointwise.binary(
            self.prepare(x),
            other.contiguous(memory_format=CHANNELS_LAST),
            self.weight,
            self.bias,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
            "add",
            1.0,
            None,
            [],
            None,
        )


class FusedUpConv:
    """Nearest x2 up-sampling followed by a 3x3 conv, computed as four 2x2 convs on the LR input.

    Each output phase ``(a, b)`` of ``conv3x3(upsample2x(f))`` sees only two distinct input rows
    and columns, so its kernel folds to 2x2 (rows ``[w0, w1 + w2]`` for phase 0, ``[w0 + w1, w2]``
    for phase 1; the same for columns): 4/9 of the multiply-adds, and no up-sampled copy.
    """

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype) -> None:
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1):
            raise ValueError("FusedUpConv needs a 3x3 conv with padding 1 and stride 1")
        weight = conv.weight.detach().float()
        self.phases: list[list[FusedConv]] = []
        for a in (0, 1):
            rows = _fold_taps(weight, a, dim=2)
            self.phases.append([])
            for b in (0, 1):
                folded = nn.Conv2d(conv.in_channels, conv.out_channels, 2, bias=False)
                folded.weight.data = _fold_taps(rows, b, dim=3)
                fused = FusedConv(folded, dtype)
                fused.bias = conv.bias.detach().float().to(dtype) if conv.bias is not None else None
                self.phases[a].append(fused)

    def __call__(self, x: torch.Tensor, activate: bool = True) -> torch.Tensor:
        """LeakyReLU(conv3x3(upsample_nearest_2x(x))) as one channels_last tensor."""
        n, _, height, width = x.shape
        padded = F.pad(x, (1, 1, 1, 1))
        first = self.phases[0][0]
        out = torch.empty(
            n, height, 2, width, 2, first.weight.shape[0], dtype=first.dtype, device=x.device
        )
        for a in (0, 1):
            for b in (0, 1):
                window = padded[..., a : a + height + 1, b : b + width + 1]
                out[:, :, a, :, b, :] = self.phases[a][b](window, activate).permute(0, 2, 3, 1)
        return out.view(n, 2 * height, 2 * width, -1).permute(0, 3, 1, 2)


def _fold_taps(weight: torch.Tensor, phase: int, dim: int) -> torch.Tensor:
    """Fold a 3-tap kernel axis to the 2 taps one nearest-up-sampled phase sees."""
    w0, w1, w2 = weight.unbind(dim)
    taps = (w0, w1 + w2) if phase == 0 else (w0 + w1, w2)
    return torch.stack(taps, dim)


class FusedDenseBlock:
    """A residual dense block: ``x + 0.2 * conv5(cat(x, x1..x4))`` with fused convolutions."""

    def __init__(self, block: ResidualDenseBlock, dtype: torch.dtype) -> None:
        self.convs = [FusedConv(getattr(block, f"conv{i}"), dtype) for i in range(1, 5)]
        self.conv5 = FusedConv(block.conv5, dtype, scale=RESIDUAL_SCALE)
        self.dtype = dtype

    def __call__(
        self, x: torch.Tensor, record: Callable[[Sequence[torch.Tensor]], None] | None = None
    ) -> torch.Tensor:
        features = [x.to(self.dtype).contiguous(memory_format=CHANNELS_LAST)]
        for conv in self.convs:
            features.append(conv(torch.cat(features, 1), activate=True))
        if record is not None:
            record(features)
        return self.conv5.plus(torch.cat(features, 1), x)


DenseBlock = Callable[[torch.Tensor], torch.Tensor]
BlockFactory = Callable[[int, ResidualDenseBlock], DenseBlock]


class FusedRRDBNet:
    """An inference-only copy of an :class:`RRDBNet` (CPU, no autograd); call it like the module."""

    def __init__(
        self,
        net: RRDBNet,
        policy: PrecisionPolicy = FP32,
        block_factory: BlockFactory | None = None,
    ) -> None:
        if not fused_ops_available():
            raise RuntimeError("this PyTorch build has no oneDNN fused convolutions")
        self.config = net.config
        self.policy = policy
        head, tail = policy.dtype(policy.head_fp32), policy.dtype(policy.tail_fp32)
        self.conv_first = FusedConv(net.conv_first, head)
        self.conv_body = FusedConv(net.conv_body, head)
        self.up_convs = [FusedUpConv(conv, tail) for conv in net.up_convs()]
        self.conv_hr = FusedConv(net.conv_hr, tail)
        self.conv_last = FusedConv(net.conv_last, tail)
        dense = [rdb for rrdb in net.body for rdb in _dense_blocks(cast(RRDB, rrdb))]
        factory = block_factory or (lambda _i, rdb: FusedDenseBlock(rdb, policy.blocks))
        self.blocks = [factory(i, rdb) for i, rdb in enumerate(dense)]

    @torch.no_grad()
    def __call__(
        self,
        x: torch.Tensor,
        record: Recorder | None = None,
        record_tail: TailRecorder | None = None,
    ) -> torch.Tensor:
        """NCHW float input in [0, 1] -> upscaled float32 output (as ``RRDBNet.forward``);
        ``record`` and ``record_tail`` observe activations (int8 calibration)."""
        factor = self.config.unshuffle_factor
        height, width = x.shape[-2:]
        x = x.float()
        if factor > 1:
            x = F.pixel_unshuffle(pad_to_multiple(x, factor), factor)
        feat = self.conv_first(x)
        trunk = feat.to(self.policy.residual_dtype)
        for i in range(0, len(self.blocks), 3):
            out = trunk
            for j in range(i, i + 3):
                if record is None:
                    out = self.blocks[j](out)
                else:
                    out = self.blocks[j](out, lambda f, j=j: record(j, f))  # type: ignore[call-arg]
            trunk = torch.add(trunk, out, alpha=RESIDUAL_SCALE)
        feat = self.conv_body.plus(trunk, feat)
        tail_scale = 2 ** len(self.up_convs)
        rows = strip_rows(feat.shape[-1], feat.shape[1], tail_scale)
        out = map_row_strips(lambda f: self.tail(f, record_tail), feat, tail_scale, rows)
        if factor > 1:
            out = out[..., : height * self.config.scale, : width * self.config.scale]
        return out

    def tail(self, feat: torch.Tensor, record: TailRecorder | None = None) -> torch.Tensor:
        """Up-sampling convs and HR convs on (a row strip of) the trunk's output; float32 out."""
        for i, conv in enumerate(self.up_convs):
            if record is not None:
                record(i, feat)
            feat = conv(feat, activate=True)
        if record is not None:
            record(len(self.up_convs), feat)
        return self.conv_last(self.conv_hr(feat, activate=True)).float()


def _dense_blocks(rrdb: RRDB) -> list[ResidualDenseBlock]:
    return [rrdb.rdb1, rrdb.rdb2, rrdb.rdb3]
