"""Loading any supported model file: read it safely, recognise its architecture, build it strictly.

A file is read as tensors (:mod:`esrgan_plugin.formats`), its architecture and key layout are
detected from the keys (:mod:`esrgan_plugin.arch.registry`), the tensors renamed to the
canonical layout, the hyperparameters read off their shapes, and the network built on the meta
device and loaded strictly: a file cannot make us allocate a network its tensors do not fill.
A state dict none of the project's architectures recognises is offered to spandrel
(:mod:`esrgan_plugin.arch.spandrel.load`): the same tensors, never the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esrgan_plugin.arch.registry import architecture_of, detect_layout, shown_key
from esrgan_plugin.arch.spandrel.load import load as load_through_spandrel
from esrgan_plugin.arch.spandrel.load import summary as spandrel_summary
from esrgan_plugin.cache import cached_conversion
from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.formats.files import (
    TORCH_SUFFIXES,
    StateDict,
    normalise_state_dict,
    read_safetensors,
    read_torch,
    save_state_dict,
)
from esrgan_plugin.formats.ncnn_models import read_ncnn_state_dict
from esrgan_plugin.models.cards import read_card
from esrgan_plugin.models.files import is_ncnn_path
from esrgan_plugin.models.loaded import LoadedModel
from esrgan_plugin.models.names import resolve_model_path
from pipelines.api import first_line

FORMAT_TAG = "esrgan-pipelines/1"
"""Written into the metadata of every safetensors file this project saves."""

SPANDREL_LAYOUT = "spandrel"
"""The layout name of a model loaded through spandrel (its own key layout)."""


def read_state_dict(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """Tensors and metadata of a ``.safetensors``, ``.pth``/``.pt`` or ncnn ``.param`` file,
    unwrapped from training containers and without ``module.`` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    if is_ncnn_path(path):
        state, metadata = _read_ncnn(path)
    elif path.suffix.lower() == ".safetensors":
        state, metadata = read_safetensors(path)
    elif path.suffix.lower() in TORCH_SUFFIXES:
        state, metadata = read_torch(path), {}  # type: ignore[assignment]  # checked below
    else:
        raise CheckpointError(
            f"{path}: unsupported model file extension {path.suffix!r}; expected .safetensors, .pth, .pt or an ncnn .param"
        )
    return normalise_state_dict(state, source=str(path)), metadata


def _read_ncnn(path: Path) -> tuple[StateDict, dict[str, str]]:
    """An ncnn model's canonical tensors, converted once and then read from the cache."""

    def convert() -> tuple[StateDict, dict[str, str]]:
        return read_ncnn_state_dict(str(path), _build_module)

    sources = [path.with_suffix(".param"), path.with_suffix(".bin")]
    if not all(p.is_file() for p in sources):
        return convert()  # reports which file is missing
    return cached_conversion(sources, convert)


def _build_module(state: StateDict, metadata: dict[str, str], source: str) -> nn.Module:
    return build_from_state_dict(state, metadata, source).module


def build_from_state_dict(
    state: StateDict, metadata: Mapping[str, str] | None = None, source: str = "checkpoint"
) -> LoadedModel:
    """Detect the layout, rename to canonical keys, infer hyperparameters and load strictly."""
    metadata = dict(metadata or {})
    try:
        arch, layout = detect_layout(state, source)
    except CheckpointError as unknown:  # not one of ours: spandrel's architectures come last
        network = load_through_spandrel(state, source)
        if network is None:
            raise CheckpointError(f"{unknown}; {spandrel_summary()}") from None
        return LoadedModel(network, SPANDREL_LAYOUT, network.config, metadata, source)
    canonical = layout.to_canonical(state)
    arch.check_shapes(canonical, source)
    try:
        config = arch.read_config(canonical, source, metadata)
    except (IndexError, KeyError, ZeroDivisionError) as exc:  # a safety net behind the checks
        raise CheckpointError(
            f"{source}: tensor shapes do not fit a {arch.name} "
            f"({type(exc).__name__}: {first_line(exc)})"
        ) from None
    with torch.device("meta"):  # shapes only: a file cannot make us allocate a huge network
        skeleton = arch.build(config)
    _check_strict(skeleton, canonical, source)
    tensors = {k: v.float() for k, v in canonical.items()}
    module = skeleton  # no weight initialisation to throw away: every tensor comes from the file
    module.load_state_dict(tensors, strict=True, assign=True)
    if any(t.is_meta for t in (*module.parameters(), *module.buffers())):
        module = arch.build(config)  # a tensor the file does not hold: build it for real
        module.load_state_dict(tensors, strict=True)
    module.eval().requires_grad_(False)
    return LoadedModel(module, layout.name, config, metadata, source, arch)


def _check_strict(module: nn.Module, state: StateDict, source: str) -> None:
    """``state`` has exactly ``module``'s keys, shapes and floating-point tensors."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing keys {_sample(missing)}")
        if extra:
            parts.append(f"unexpected keys {_sample(extra)}")
        raise CheckpointError(
            f"{source}: checkpoint does not match the inferred network: {'; '.join(parts)}"
        )
    for key, tensor in expected.items():
        if tensor.shape != state[key].shape:
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}"
            )
        if tensor.is_floating_point() and not state[key].is_floating_point():
            # (integer buffers such as BN's num_batches_tracked may be stored in any dtype)
            raise CheckpointError(
                f"{source}: tensor {key} has dtype {state[key].dtype}, expected {tensor.dtype}"
            )


def _sample(keys: list[str], n: int = 4) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(shown_key(k) for k in keys[:n]) + more


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a model file (any supported layout or architecture) or a model name, on the CPU,
    with the model card beside the file when there is one."""
    path = resolve_model_path(path)
    state, metadata = read_state_dict(path)
    loaded = build_from_state_dict(state, metadata, source=str(path))
    if is_ncnn_path(path):
        loaded.layout = "ncnn"
    loaded.card = read_card(path)
    return loaded


def model_metadata(model: nn.Module, extra: Mapping[str, object] | None = None) -> dict[str, str]:
    """Safetensors metadata (strings only) describing ``model``'s architecture."""
    config: Any = model.config
    arch = architecture_of(model).name
    meta = {"format": FORMAT_TAG, "architecture": arch, "scale": str(config.scale)}
    meta.update({k: str(v) for k, v in config.to_dict().items()})
    meta["channels"] = f"{config.in_channels}->{config.out_channels}"
    for key, value in (extra or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return meta


def save_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    extra_metadata: Mapping[str, object] | None = None,
) -> Path:
    """Write ``model`` as safetensors in the canonical layout, atomically (temp file + rename)."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{path}: the project writes only .safetensors files")
    tensors = architecture_of(model).saved_state(model)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}
    save_state_dict(path, state, model_metadata(model, extra_metadata))
    return path
