"""A handful of checks on the full-size x4 network (nf 64, gc 32, nb 23); marked slow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esrgan_plugin.arch import RRDBNet, RRDBNetConfig
from esrgan_plugin.checkpoint import build_from_state_dict
from esrgan_plugin.inference import upscale

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


def test_full_model_tiles_are_seamless_with_the_default_halo(full_model: RRDBNet) -> None:
    model = build_from_state_dict(full_model.state_dict())
    yy, xx = np.mgrid[0:40, 0:40]
    image = (
        np.stack([np.sin(xx / 4), np.cos(yy / 5), np.sin((xx + yy) / 7)], -1) * 127 + 128
    ).astype(np.uint8)
    whole = upscale(image, model, tile=0, device="cpu")
    tiled = upscale(image, model, tile=20, device="cpu")  # the measured halo
    assert np.abs(whole.astype(int) - tiled).max() <= 1
