"""Checkpoint files as tensors: safetensors and PyTorch's weights-only ``.pth``, read and written safely.

``.pth``/``.pt`` files go through ``torch.load(weights_only=True)`` only; training-framework
containers (``{"params_ema": ...}``, ``{"params": ...}``) are unwrapped and ``module.`` prefixes
stripped. Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from esrgan_plugin.errors import CheckpointError
from pipelines.api import atomic_target, first_line

StateDict = dict[str, torch.Tensor]

WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict")
"""Containers training frameworks save weights in, in order of preference."""

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def read_safetensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    """Tensors and string metadata of a safetensors file."""
    try:
        state = load_file(str(path))
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{path}: truncated or corrupt safetensors file ({first_line(exc)})"
        ) from None
    return state, dict(header.get("__metadata__") or {})


def read_torch(path: Path) -> object:
    """The object in a weights-only PyTorch file; a pickle of anything else is refused."""
    try:
        with warnings.catch_warnings():  # torch warns about old pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: the file contains pickled Python objects other than "
            f"tensors ({_pickle_reason(exc)}); only weights-only checkpoints are loaded, never "
            "arbitrary pickles"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint ({first_line(exc)})"
        ) from None
    except Exception as exc:  # a malformed pickle stream trips torch's unpickler (IndexError, ...)
        raise CheckpointError(
            f"{path}: corrupt checkpoint: not a valid pickle stream "
            f"({type(exc).__name__}: {first_line(exc)[:160]})"
        ) from None


def _pickle_reason(exc: BaseException) -> str:
    """What the weights-only unpickler refused, e.g. ``unsupported GLOBAL posix.system``."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"unsupported GLOBAL {found.group(1)}"
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip()
        and not line.startswith(("Weights only load failed", "Check the documentation"))
    ]
    reason = lines[0] if lines else type(exc).__name__
    return reason if len(reason) <= 120 else reason[:117].rsplit(" ", 1)[0] + "..."


def normalise_state_dict(obj: object, source: str = "checkpoint") -> StateDict:
    """Unwrap training-framework containers and strip ``module.`` prefixes."""
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{source}: expected a state dict of tensors, found {type(obj).__name__}"
        )
    state: StateDict = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. an 'iteration' counter saved beside the weights
        name = str(key)
        while name.startswith("module."):
            name = name[len("module.") :]
        state[name] = value
    if not state:
        raise CheckpointError(f"{source}: the checkpoint holds no tensors")
    return state


def save_state_dict(path: Path, state: StateDict, metadata: Mapping[str, str]) -> None:
    """Atomic safetensors write: a failure never leaves a half-written file at ``path``."""
    try:
        with atomic_target(path) as tmp:
            save_file(state, str(tmp), metadata=dict(metadata))
    except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
        reason = getattr(exc, "strerror", None) or first_line(exc).removeprefix(
            "Error while serializing: "
        )
        raise CheckpointError(
            f"{path}: cannot write model file ({reason}); any previous file is unchanged"
        ) from None
