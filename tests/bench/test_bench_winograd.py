"""bench/bench_winograd.py: its F(2x2, 3x3) convolution is the 3x3 convolution it is timed against."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (1, 2)])
def test_winograd_equals_conv2d(size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    # the bench defaults OMP_WAIT_POLICY at import: put this process's value back afterwards
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    sys.modules.pop("bench_winograd", None)
    from bench_winograd import Winograd

    torch.manual_seed(0)
    weight, bias = torch.randn(5, 3, 3, 3), torch.randn(5)
    x = torch.randn(2, 3, *size)
    expected = F.conv2d(x, weight, bias, padding=1)
    assert torch.allclose(Winograd(weight, bias, torch.float32)(x), expected, atol=1e-4)
    bf16 = Winograd(weight, bias, torch.bfloat16)(x)
    assert (bf16 - expected).abs().max() < 0.1 * expected.abs().max()
