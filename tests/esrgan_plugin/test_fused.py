"""The fused CPU engine (fp32, bf16) against the canonical RRDBNet it is built from."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny_rrdbnet
from torch import nn
from torch.nn import functional as F

from esrgan_plugin.engines.onednn.fused import (
    BF16,
    FusedRRDBNet,
    FusedUpConv,
    PrecisionPolicy,
    bf16_convolutions_available,
    fused_ops_available,
)
from esrgan_plugin.inference import UpscaleOptions, Upscaler

pytestmark = pytest.mark.skipif(not fused_ops_available(), reason="no oneDNN in this PyTorch")


requires_bf16 = pytest.mark.skipif(
    not bf16_convolutions_available(),
    reason="this CPU has no oneDNN bf16 convolutions (AVX-512 BW/VL/DQ or AVX-NE-CONVERT)",
)


def test_the_bf16_check_says_what_this_cpu_runs() -> None:
    """bf16_convolutions_available() decides whether the engine offers bf16: where it says no,
    PyTorch really refuses bf16 convolutions; where it says yes, they run."""
    net, x = tiny_rrdbnet(nf=8, nb=1, gc=4), torch.rand(1, 3, 8, 8)
    if bf16_convolutions_available():
        assert FusedRRDBNet(net, BF16)(x).shape == (1, 3, 32, 32)
    else:
        with pytest.raises(RuntimeError, match="bf16"):
            FusedRRDBNet(net, BF16)(x)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def test_state_dict_untouched() -> None:
    net = tiny_rrdbnet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    FusedRRDBNet(net, BF16)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_up_conv_equals_upsample_then_conv() -> None:
    conv = nn.Conv2d(8, 5, 3, 1, 1)
    x = torch.randn(2, 8, 7, 9)
    with torch.no_grad():
        expected = F.leaky_relu(conv(F.interpolate(x, scale_factor=2, mode="nearest")), 0.2)
    actual = FusedUpConv(conv, torch.float32)(x)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= 1e-5


@requires_bf16
def test_bf16_everywhere_is_still_close_to_fp32() -> None:
    """The engine's default bf16 policy is in tests/esrgan_plugin/test_engines.py; this one
    rounds the residual stream, head and tail too."""
    policy = PrecisionPolicy(torch.bfloat16, residual_fp32=False, head_fp32=False, tail_fp32=False)
    net = tiny_rrdbnet(nf=16, nb=2, gc=8)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    actual = FusedRRDBNet(net, policy)(x).clamp(0, 1)
    assert 35 < psnr(actual, expected) < math.inf  # rounded, but close


def test_the_torch_choice_runs_the_fused_engine_on_the_cpu() -> None:
    net = tiny_rrdbnet()
    up = Upscaler(net, UpscaleOptions(device="cpu", precision="fp32", tile=0, engine="torch"))
    assert up.engine.name == "onednn" and isinstance(up._network, FusedRRDBNet)
    assert up.batch_size == 1  # batching buys no throughput on the CPU
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        expected = net(x)
    assert (up.upscale_tensor(x) - expected).abs().max().item() <= 1e-5
