"""RRDBNet checkpoints: the three key layouts found in the wild and hyperparameters from shapes.

Each layout is recognised by explicit keys and renamed to the canonical (BasicSR) layout, from
which nf, nb, gc, the up-steps, the pixel-unshuffle factor and channel counts are read off the
tensor shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from esrgan_plugin.arch.descriptor import KeyLayout, conv_parameters
from esrgan_plugin.arch.keys import StateDict, key_indices, rename_keys
from esrgan_plugin.arch.rrdbnet.network import RRDBNetConfig
from esrgan_plugin.errors import CheckpointError


def old_to_canonical(state: StateDict) -> StateDict:
    """SRGAN-style ``model.N`` Sequential of the original ESRGAN release."""
    sub_indices = {
        int(m.group(1)) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k))
    }
    num_blocks = max(sub_indices) + 1 if sub_indices else 0
    top = sorted(
        {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.(weight|bias)$", k))}
    )
    last = top[-1] if top else 0
    num_upsample, rem = divmod(last - 4, 3)
    if rem or num_upsample < 0:
        raise CheckpointError(
            f"old-layout checkpoint has an unexpected last layer index model.{last} "
            "(expected model.4 + 3 per up-step)"
        )
    rules = [
        (r"^model\.0\.", "conv_first."),
        (r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", r"body.\1.rdb\2.conv\3."),
        (rf"^model\.1\.sub\.{num_blocks}\.", "conv_body."),
        (rf"^model\.{3 * num_upsample + 2}\.", "conv_hr."),
        (rf"^model\.{3 * num_upsample + 4}\.", "conv_last."),
    ]
    rules += [(rf"^model\.{3 * i}\.", f"conv_up{i}.") for i in range(1, num_upsample + 1)]
    return rename_keys(state, rules)


def esrgan_repo_to_canonical(state: StateDict) -> StateDict:
    """xinntao/ESRGAN's names after its conversion script."""
    return rename_keys(
        state,
        [
            (r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."),
            (r"^trunk_conv\.", "conv_body."),
            (r"^upconv(\d)\.", r"conv_up\1."),
            (r"^HRconv\.", "conv_hr."),
        ],
    )


LAYOUTS = (
    KeyLayout(
        "old",
        "original ESRGAN release: model.0, model.1.sub.N.RDBk.convj.0, model.3, ...",
        ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"),
        old_to_canonical,
    ),
    KeyLayout(
        "esrgan",
        "xinntao/ESRGAN repo: conv_first, RRDB_trunk.N.RDBk.convj, trunk_conv, upconvN, HRconv",
        ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight"),
        esrgan_repo_to_canonical,
    ),
    KeyLayout(
        "basicsr",
        "BasicSR / Real-ESRGAN: conv_first, body.N.rdbk.convj, conv_body, conv_upN, conv_hr",
        ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight"),
        also_when=frozenset(
            {"conv_first.weight", "conv_body.weight", "conv_hr.weight", "conv_last.weight"}
        ),
    ),
)


def read_config(
    state: Mapping[str, torch.Tensor], source: str = "checkpoint", _meta: object = None
) -> RRDBNetConfig:
    """Read nf, nb, gc, up-steps, unshuffle factor and channel counts off canonical tensors."""
    try:
        first = state["conv_first.weight"]
        last = state["conv_last.weight"]
    except KeyError as exc:
        raise CheckpointError(f"{source}: missing key {exc.args[0]}") from None
    blocks = key_indices(state, r"body\.(\d+)\.rdb1\.conv1\.weight$")
    if blocks != list(range(len(blocks))):
        raise CheckpointError(
            f"{source}: RRDB blocks are not numbered 0..N-1 (found {blocks[:8]}...)"
        )
    ups = key_indices(state, r"conv_up(\d+)\.weight$")
    if ups != list(range(1, len(ups) + 1)):
        raise CheckpointError(f"{source}: up-step convs are not numbered 1..N (found {ups})")
    growth = int(state["body.0.rdb1.conv1.weight"].shape[0]) if blocks else 32
    first_in, out_ch = int(first.shape[1]), int(last.shape[0])
    unshuffle = 1
    for factor in (4, 2):
        if first_in == out_ch * factor * factor and 2 ** len(ups) >= factor:
            unshuffle = factor
            break
    try:
        return RRDBNetConfig(
            in_channels=first_in // unshuffle**2,
            out_channels=out_ch,
            num_features=int(first.shape[0]),
            num_blocks=len(blocks),
            growth_channels=growth,
            num_upsample=len(ups),
            unshuffle_factor=unshuffle,
        )
    except ValueError as exc:
        raise CheckpointError(f"{source}: inconsistent hyperparameters: {exc}") from None


def count_parameters(c: RRDBNetConfig) -> int:
    """Parameters of an RRDBNet from its configuration alone."""
    nf, gc = c.num_features, c.growth_channels
    dense = sum(conv_parameters(nf + j * gc, gc) for j in range(4)) + conv_parameters(
        nf + 4 * gc, nf
    )
    return (
        conv_parameters(c.in_channels * c.unshuffle_factor**2, nf)
        + c.num_blocks * 3 * dense
        + (2 + c.num_upsample) * conv_parameters(nf, nf)  # conv_body, up-steps, conv_hr
        + conv_parameters(nf, c.out_channels)
    )
