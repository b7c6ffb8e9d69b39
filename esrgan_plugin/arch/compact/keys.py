"""SRVGGNetCompact checkpoints: Real-ESRGAN's key layout and hyperparameters from shapes."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from esrgan_plugin.arch.compact.network import CompactConfig
from esrgan_plugin.arch.descriptor import KeyLayout, conv_parameters
from esrgan_plugin.arch.keys import key_indices
from esrgan_plugin.errors import CheckpointError

LAYOUTS = (
    KeyLayout(
        "compact",
        "Real-ESRGAN SRVGGNetCompact: body.0 conv, body.1 PReLU, ..., body.2n+2 last conv",
        ("body.0.weight", "body.1.weight", "body.2.weight"),
    ),
)


def read_config(
    state: Mapping[str, torch.Tensor], source: str = "checkpoint", meta: Mapping[str, str] = {}
) -> CompactConfig:
    """nf, number of convs and pixel-shuffle factor from the tensors; ``output_scale`` (a final
    bicubic resize, as the ncnn x2/x3 packages do) from the metadata."""
    convs = [
        i
        for i in key_indices(state, r"body\.(\d+)\.weight$")
        if state[f"body.{i}.weight"].ndim == 4
    ]
    if not convs or convs != list(range(0, 2 * len(convs), 2)):
        raise CheckpointError(
            f"{source}: SRVGGNetCompact convs should be body.0, body.2, ..., found {convs[:8]}"
        )
    first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
    in_ch = int(first.shape[1])
    upscale = round((int(last.shape[0]) / in_ch) ** 0.5)
    if upscale < 1 or in_ch * upscale**2 != int(last.shape[0]):
        raise CheckpointError(
            f"{source}: the last conv's {int(last.shape[0])} outputs are not {in_ch} channels x "
            "a square pixel-shuffle factor"
        )
    try:
        return CompactConfig(
            in_channels=in_ch,
            out_channels=in_ch,
            num_features=int(first.shape[0]),
            num_convs=len(convs) - 2,
            upscale=upscale,
            output_scale=_int_meta(meta, "output_scale"),
        )
    except ValueError as exc:
        raise CheckpointError(f"{source}: inconsistent hyperparameters: {exc}") from None


def _int_meta(metadata: Mapping[str, str], key: str) -> int:
    """An integer metadata value (0 when absent), or a clear error."""
    value = metadata.get(key, "0")
    try:
        return int(value)
    except ValueError:
        raise CheckpointError(f"metadata {key}={value!r} is not a whole number") from None


def count_parameters(c: CompactConfig) -> int:
    """Parameters of an SRVGGNetCompact from its configuration alone."""
    nf = c.num_features
    return (
        conv_parameters(c.in_channels, nf)
        + (c.num_convs + 1) * nf  # PReLU slopes
        + c.num_convs * conv_parameters(nf, nf)
        + conv_parameters(nf, c.out_channels * c.upscale**2)
    )
