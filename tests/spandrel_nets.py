"""Tiny, randomly initialised networks of the architecture families users bring, built with
spandrel's own classes (no weights downloaded), and saved as model files.

Each is as small as its architecture allows while still exercising what matters: attention
windows smaller than the test images (SwinIR, DAT, HAT, OmniSR), a minimum input size, a
re-parameterised convolution (SPAN), GroupNorm (RealPLKSR), and an x1 restoration network
(Compact x1, which the project's own SRVGGNetCompact descriptor loads).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import spandrel
import torch
from safetensors.torch import save_file
from torch import nn


def _span() -> nn.Module:
    from spandrel.architectures.SPAN import SPAN

    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=4)


def _swinir() -> nn.Module:
    from spandrel.architectures.SwinIR import SwinIR

    return SwinIR(
        embed_dim=12,
        depths=[1],
        num_heads=[2],
        window_size=4,
        upscale=2,
        upsampler="pixelshuffledirect",
        img_size=16,
    )


def _dat() -> nn.Module:
    from spandrel.architectures.DAT import DAT

    return DAT(
        embed_dim=16,
        depth=[1],
        num_heads=[2],
        split_size=[2, 4],
        upscale=2,
        upsampler="pixelshuffledirect",
        expansion_factor=2.0,
    )


def _omnisr() -> nn.Module:
    from spandrel.architectures.OmniSR import OmniSR

    return OmniSR(num_feat=16, block_num=1, window_size=8, res_num=1, up_scale=2)


def _realplksr() -> nn.Module:
    from spandrel.architectures.PLKSR import RealPLKSR

    return RealPLKSR(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=5)


def _compact_x1() -> nn.Module:
    from spandrel.architectures.Compact import Compact

    return Compact(num_feat=8, num_conv=2, upscale=1)


NETS: dict[str, tuple[Callable[[], nn.Module], str, int, str]] = {
    # name: (builder, our architecture name, scale, file suffix)
    "span": (_span, "SPAN", 4, ".pth"),
    "swinir": (_swinir, "SwinIR", 2, ".safetensors"),
    "dat": (_dat, "DAT", 2, ".pth"),
    "omnisr": (_omnisr, "OmniSR", 2, ".safetensors"),
    "realplksr": (_realplksr, "PLKSR", 2, ".pth"),
    "compact-x1": (_compact_x1, "SRVGGNetCompact", 1, ".safetensors"),
}
"""Every family: a test parametrised over these covers SPAN, SwinIR, DAT, OmniSR, RealPLKSR and
Compact x1."""

CONVOLUTIONAL = ("span", "compact-x1")
"""Families whose output pixels depend only on a bounded neighbourhood (RealPLKSR's GroupNorm
and OmniSR's channel attention see the whole image; attention windows shift)."""


def build(name: str, seed: int = 0) -> nn.Module:
    """The network ``name`` with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = NETS[name][0]()
    with torch.no_grad():  # larger than the default initialisation, so every layer matters
        for p in net.parameters():
            if p.ndim > 1:
                p.add_(torch.randn_like(p) * 0.02)
    return net.eval()


def save(net: nn.Module, path: Path) -> Path:
    """``net``'s state dict as ``path`` (.pth through torch.save, else safetensors)."""
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    if path.suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    return path


def reference(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """spandrel's own call on ``x``: its loader's descriptor of ``net``'s weights (padding to
    the size requirements, clamping to [0, 1])."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(net.state_dict()))
    return descriptor(x)
