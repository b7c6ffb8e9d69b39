"""A cache of converted models: foreign files (ncnn) become canonical safetensors once.

Entries are keyed by a hash of the source files' bytes (and the converter's version), written
atomically, and carry a hash of their own tensors: an entry that fails to read or whose tensors
do not match is rebuilt. When the cache folder cannot be written the conversion is used from
memory. Folder: ``$ESRGAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/esrgan-pipelines``, else
``~/.cache/esrgan-pipelines``; entries live under ``models/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from pipelines.io.atomic import atomic_target

CACHE_ENV = "ESRGAN_CACHE_DIR"
CONVERTER_VERSION = "ncnn-reader/1"
"""Part of every key: a change to how files are converted invalidates old entries."""

StateDict = dict[str, torch.Tensor]
Conversion = tuple[StateDict, dict[str, str]]

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where converted models are kept (the env var wins, then XDG, then ~/.cache)."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "esrgan-pipelines"


def source_hash(paths: Sequence[Path]) -> str:
    """SHA-256 of the converter version and every source file's bytes, in order."""
    digest = hashlib.sha256(CONVERTER_VERSION.encode())
    for path in paths:
        digest.update(b"\0" + path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def tensors_hash(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (in sorted name order)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def entry_path(sources: Sequence[Path], key: str) -> Path:
    return cache_dir() / "models" / f"{sources[0].stem}-{key[:16]}.safetensors"


def cached_conversion(sources: Sequence[Path], convert: Callable[[], Conversion]) -> Conversion:
    """The cached conversion of ``sources``, building (and storing) it when absent or corrupt."""
    key = source_hash(sources)
    entry = entry_path(sources, key)
    if entry.is_file():
        found = _read_entry(entry, key)
        if found is not None:
            return found
        log.warning("model cache entry %s is corrupt; converting %s again", entry, sources[0])
    state, metadata = convert()
    stored = {**metadata, "source_sha256": key, "tensors_sha256": tensors_hash(state)}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(entry) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=stored)
    except (OSError, SafetensorError) as exc:  # a full disk is a SafetensorError
        log.info("model cache %s is not writable (%s); using the conversion in memory", entry, exc)
    return state, metadata


def _read_entry(entry: Path, key: str) -> Conversion | None:
    """The entry's tensors and metadata if it is whole and belongs to ``key``; None otherwise."""
    try:
        with safe_open(str(entry), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            state = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None
    if metadata.get("source_sha256") != key or metadata.get("tensors_sha256") != tensors_hash(
        state
    ):
        return None
    metadata.pop("source_sha256")
    metadata.pop("tensors_sha256")
    return state, metadata
