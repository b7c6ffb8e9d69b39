"""A handful of checks on the full-size x4 network (nf 64, gc 32, nb 23); marked slow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esrgan_plugin.arch import RRDBNet, RRDBNetConfig
from esrgan_plugin.inference import upscale
from esrgan_plugin.models.loading import build_from_state_dict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_model() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(RRDBNetConfig()).eval()


def test_full_model_matches_spandrel(full_model: RRDBNet) -> None:
    spandrel = pytest.importorskip("spandrel")
    reference = spandrel.ModelLoader().load_from_state_dict(full_model.state_dict()).model.eval()
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert (full_model(x) - reference(x)).abs().max().item() <= 1e-5
    assert sum(p.numel() for p in full_model.parameters()) == 16_697_987


def test_full_model_tiles_are_seamless_with_a_24_pixel_halo(full_model: RRDBNet) -> None:
    """96x96 in 32-pixel tiles with halo 24: the middle tile's 80-pixel window is inside the
    image, so it never sees the edges; without a halo the seams show."""
    model = build_from_state_dict(full_model.state_dict())
    yy, xx = np.mgrid[0:96, 0:96]
    image = (
        np.stack([np.sin(xx / 4), np.cos(yy / 5), np.sin((xx + yy) / 7)], -1) * 127 + 128
    ).astype(np.uint8)
    whole = upscale(image, model, tile=0, precision="fp32", device="cpu")
    tiled = upscale(image, model, tile=32, halo=24, precision="fp32", device="cpu")
    assert 32 + 2 * 24 < 96
    assert np.abs(whole.astype(int) - tiled).max() <= 1
    seams = upscale(image, model, tile=32, halo=0, precision="fp32", device="cpu")
    assert np.abs(whole.astype(int) - seams).max() > 1
