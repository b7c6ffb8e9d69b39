"""Test helpers: tiny RRDBNets and their state dicts in every real-world key layout."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
from esrgan_plugin.models.loading import save_model


def tiny_rrdbnet(
    scale: int = 4, nf: int = 8, nb: int = 1, gc: int = 4, in_ch: int = 3, out_ch: int = 3
) -> RRDBNet:
    """A small RRDBNet with weights noisy enough that every layer matters."""
    config = RRDBNetConfig.for_scale(
        scale,
        num_features=nf,
        num_blocks=nb,
        growth_channels=gc,
        in_channels=in_ch,
        out_channels=out_ch,
    )
    net = RRDBNet(config)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.eval()


def to_layout(state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """Rename canonical (BasicSR) keys to the 'old' or 'esrgan' layout."""
    if layout == "basicsr":
        return dict(state)
    ups = sorted({int(m.group(1)) for k in state if (m := re.match(r"conv_up(\d+)\.", k))})
    nb = len({k.split(".")[1] for k in state if k.startswith("body.")})
    n = len(ups)
    out = {}
    for key, value in state.items():
        if layout == "esrgan":
            new = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", key)
            new = new.replace("conv_body.", "trunk_conv.").replace("conv_hr.", "HRconv.")
            new = re.sub(r"^conv_up(\d)\.", r"upconv\1.", new)
        elif layout == "old":
            new = re.sub(
                r"^body\.(\d+)\.rdb(\d)\.conv(\d)\.", r"model.1.sub.\1.RDB\2.conv\3.0.", key
            )
            new = re.sub(r"^conv_first\.", "model.0.", new)
            new = re.sub(r"^conv_body\.", f"model.1.sub.{nb}.", new)
            new = re.sub(r"^conv_up(\d)\.", lambda m: f"model.{3 * int(m.group(1))}.", new)
            new = re.sub(r"^conv_hr\.", f"model.{3 * n + 2}.", new)
            new = re.sub(r"^conv_last\.", f"model.{3 * n + 4}.", new)
        else:
            raise ValueError(layout)
        out[new] = value
    return out


def save_tiny(path: Path, **kwargs: int) -> Path:
    """Write a tiny model as canonical safetensors and return its path."""
    save_model(path, tiny_rrdbnet(**kwargs))
    return path


def random_image(h: int, w: int, c: int | None = 3, dtype: type = np.uint8) -> np.ndarray:
    rng = np.random.default_rng(1)
    shape = (h, w) if c is None else (h, w, c)
    top = 255 if dtype == np.uint8 else 65535
    return rng.integers(0, top + 1, size=shape).astype(dtype)


def params_or_skip(names: list[str], reason: str) -> list[object]:
    """Parametrize values for reference tests: the names, or one skipped placeholder if none."""
    import pytest

    return (
        list(names) if names else [pytest.param("missing", marks=pytest.mark.skip(reason=reason))]
    )
