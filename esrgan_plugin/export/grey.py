"""A colour network applied to one grey channel, as ``esrgan upscale`` applies it to grey images.

The grey channel is replicated to the network's three input channels, the network's output is
clamped to [0, 1] (as the upscaler clamps every output) and reduced to its BT.601 luma, the
weights OpenCV's RGB-to-grey conversion uses. A bioimage.io package made with ``--channels 1``
wraps its network in this module, so the package predicts what ``esrgan upscale`` writes for a
grey image. This file imports only torch: it is copied into packages as part of their
architecture source.
"""

from __future__ import annotations

import torch
from torch import nn

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""BT.601 luma weights of R, G and B (what ``cv2.cvtColor(..., COLOR_RGB2GRAY)`` uses)."""


class ReplicatedChannel(nn.Module):
    """(N, 1, H, W) -> the wrapped RGB network on (N, 3, H, W) copies -> (N, 1, sH, sW) luma."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        luma = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("luma", luma, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = self.network(x.expand(-1, 3, -1, -1)).clamp(0.0, 1.0)
        return (rgb * self.luma.to(rgb.dtype)).sum(dim=1, keepdim=True)
