"""The up-sampling tail in row strips: identical to the whole tail, for every scale and engine."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_rrdbnet

from esrgan_plugin.arch import strips
from esrgan_plugin.arch.strips import TAIL_HALO, map_row_strips, strip_rows
from esrgan_plugin.engines.onednn.fused import FP32, FusedRRDBNet, fused_ops_available


@pytest.fixture
def short_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strips of 3 LR rows, so even small test images are split many times."""
    monkeypatch.setattr(strips, "MIN_STRIP_ROWS", 3)
    monkeypatch.setattr(strips, "TAIL_STRIP_ELEMENTS", 1)


def test_strip_rows_follow_the_element_budget() -> None:
    assert strip_rows(width=100, channels=64, scale=4, elements=100 * 16 * 64 * 40) == 40
    assert strip_rows(width=10_000, channels=64, scale=4) == strips.MIN_STRIP_ROWS


@pytest.mark.parametrize("rows", [1, 3, 5, 16, 40])
def test_strips_equal_the_whole_tail(rows: int) -> None:
    net = tiny_rrdbnet(scale=4, nf=8, nb=1, gc=4)
    feat = torch.randn(1, 8, 37, 23)
    with torch.no_grad():
        whole = net.tail(feat)
        stripped = map_row_strips(net.tail, feat, 4, rows)
    assert stripped.shape == whole.shape
    assert (stripped - whole).abs().max().item() <= 1e-5


def test_the_tail_halo_is_needed() -> None:
    """Without context rows each strip's edge is zero-padded and the output changes."""
    net = tiny_rrdbnet(scale=4, nf=8, nb=1, gc=4)
    feat = torch.randn(1, 8, 24, 16)
    with torch.no_grad():
        whole = net.tail(feat)
        no_halo = map_row_strips(net.tail, feat, 4, 4, halo=0)
        with_halo = map_row_strips(net.tail, feat, 4, 4, halo=TAIL_HALO)
    assert (no_halo - whole).abs().max().item() > 1e-3
    assert (with_halo - whole).abs().max().item() <= 1e-5


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_module_forward_with_strips_matches(scale: int, short_strips: None) -> None:
    net = tiny_rrdbnet(scale=scale, nf=8, nb=1, gc=4)
    x = torch.rand(1, 3, 29, 18)
    with torch.no_grad():
        expected = net(x)
        actual = net(x, tail_strips=True)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= 1e-5


@pytest.mark.skipif(not fused_ops_available(), reason="no oneDNN in this PyTorch")
@pytest.mark.parametrize("scale", [2, 4])
def test_fused_engine_strips_match_the_module(scale: int, short_strips: None) -> None:
    net = tiny_rrdbnet(scale=scale, nf=8, nb=1, gc=4)
    x = torch.rand(1, 3, 26, 20)
    with torch.no_grad():
        expected = net(x)
    actual = FusedRRDBNet(net, FP32)(x)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= 1e-5
