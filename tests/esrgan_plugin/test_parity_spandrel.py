"""Parity with a reference implementation nobody here wrote: spandrel's ESRGAN.

The same state dict goes to both; outputs must agree to 1e-5 in fp32 for every layout and
scale. spandrel's RRDB hard-codes 32 growth channels, so these models use gc = 32.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny_rrdbnet, to_layout

from esrgan_plugin.models.loading import load_model

spandrel = pytest.importorskip(
    "spandrel", reason="spandrel is a dev extra (pip install -e '.[dev]')"
)


@pytest.mark.parametrize("layout", ["old", "esrgan", "basicsr"])
@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_matches_spandrel(tmp_path: Path, layout: str, scale: int) -> None:
    state = to_layout(tiny_rrdbnet(scale=scale, nf=16, nb=2, gc=32).state_dict(), layout)
    path = tmp_path / "model.pth"
    torch.save(state, path)
    ours = load_model(path)
    reference = spandrel.ModelLoader().load_from_file(path)
    assert reference.scale == ours.scale == scale
    x = torch.rand(1, 3, 18, 14)  # not a multiple of 4: exercises the unshuffle padding
    with torch.no_grad():
        expected = reference.model.eval()(x)
        actual = ours.module(x)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("scale", [1, 4])
def test_fused_cpu_engine_matches_spandrel(tmp_path: Path, scale: int) -> None:
    from esrgan_plugin.engines.onednn.fused import FP32, FusedRRDBNet, fused_ops_available

    if not fused_ops_available():
        pytest.skip("no oneDNN in this PyTorch")
    path = tmp_path / "model.pth"
    torch.save(tiny_rrdbnet(scale=scale, nf=16, nb=2, gc=32).state_dict(), path)
    reference = spandrel.ModelLoader().load_from_file(path)
    x = torch.rand(1, 3, 18, 14)
    with torch.no_grad():
        expected = reference.model.eval()(x)
    actual = FusedRRDBNet(load_model(path).module, FP32)(x)  # type: ignore[arg-type]
    assert (actual - expected).abs().max().item() <= 1e-5
