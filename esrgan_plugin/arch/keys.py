"""Helpers for reading checkpoints' key names: regex renames and numbered-key indices."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

StateDict = dict[str, torch.Tensor]


def rename_keys(state: StateDict, rules: list[tuple[str, str]]) -> StateDict:
    """Apply the first matching regex rename of ``rules`` to every key (unmatched keys kept)."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out: StateDict = {}
    for key, value in state.items():
        for pattern, replacement in compiled:
            new_key, count = pattern.subn(replacement, key)
            if count:
                out[new_key] = value
                break
        else:
            out[key] = value
    return out


def key_indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    """The sorted distinct integers captured by ``pattern``'s first group over all keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})
