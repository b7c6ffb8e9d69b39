"""SRResNet checkpoints (this project's BasicSR-style names) and hyperparameters from shapes."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from esrgan_plugin.arch.descriptor import KeyLayout
from esrgan_plugin.arch.keys import key_indices
from esrgan_plugin.arch.srresnet.network import SRResNetConfig
from esrgan_plugin.errors import CheckpointError

LAYOUTS = (
    KeyLayout(
        "srresnet",
        "this project's SRResNet: conv_first, body.N.conv1/conv2, upsample.N, conv_hr",
        ("conv_first.weight", "body.0.conv1.weight", "upsample.0.weight", "conv_hr.weight"),
    ),
)


def read_config(
    state: Mapping[str, torch.Tensor], source: str = "checkpoint", _meta: object = None
) -> SRResNetConfig:
    """Hyperparameters of an SRResNet from its tensors (scale from the up-step shapes)."""
    steps = key_indices(state, r"upsample\.(\d+)\.weight$")
    nf = int(state["conv_first.weight"].shape[0])
    factors = [round((int(state[f"upsample.{i}.weight"].shape[0]) // nf) ** 0.5) for i in steps]
    scale = 1
    for f in factors:
        scale *= f
    try:
        return SRResNetConfig(
            in_channels=int(state["conv_first.weight"].shape[1]),
            out_channels=int(state["conv_last.weight"].shape[0]),
            num_features=nf,
            num_blocks=len(key_indices(state, r"body\.(\d+)\.conv1\.weight$")),
            scale=scale,
            batch_norm=any(k.startswith("body.0.bn1.") for k in state),
        )
    except ValueError as exc:
        raise CheckpointError(f"{source}: inconsistent hyperparameters: {exc}") from None
