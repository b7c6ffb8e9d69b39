"""The full-size x4 network (nf 64, gc 32, nb 23) against spandrel's; marked slow.

Seams at full size are checked on real weights (test_seamless_real.py): random weights' context
decays fast, so a halo that hides their seams says nothing of a trained model's.
"""

from __future__ import annotations

import pytest
import torch

from esrgan_plugin.arch import RRDBNet, RRDBNetConfig

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
