"""The one on-disk cache: converted models, measured halos, int8 calibrations, exported graphs,
measured precision choices.

Every entry is content-addressed: its key hashes what it was derived from (a model file's bytes,
:func:`file_sha256`, or a network's weights, :func:`weights_sha256`) with the version of the
code that derives it (:class:`Kind`), so a changed file, weight or method never meets an old
entry. Writes are atomic (temporary file, then rename); an entry that fails to read or verify is
rebuilt; a cache folder that cannot be written leaves the work uncached, with a one-line note.

Folder: ``$ESRGAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/esrgan-pipelines``, else
``~/.cache/esrgan-pipelines``; each kind of entry in its own sub-folder.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from safetensors import SafetensorError, safe_open

from esrgan_plugin.models.files import file_sha256, model_files
from pipelines.api import atomic_target

if TYPE_CHECKING:
    import torch
    from torch import nn

    StateDict = dict[str, torch.Tensor]
    Conversion = tuple[StateDict, dict[str, str]]

__all__ = [
    "CACHE_ENV",
    "CALIBRATIONS",
    "GRAPHS",
    "HALOS",
    "MODELS",
    "PRECISION_CHOICES",
    "Kind",
    "cache_dir",
    "cached",
    "cached_conversion",
    "entry_path",
    "file_sha256",
    "load",
    "model_files",
    "read_conversion",
    "store",
    "tensors_sha256",
    "weights_sha256",
]

CACHE_ENV = "ESRGAN_CACHE_DIR"

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """A kind of entry: its sub-folder, file suffix and the version of the code that makes it."""

    folder: str
    suffix: str
    version: str

    def key(self, *parts: str) -> str:
        """A key from the content hashes and settings an entry depends on (and this version)."""
        return hashlib.sha256("|".join((self.version, *parts)).encode()).hexdigest()


MODELS = Kind("models", ".safetensors", "ncnn-reader/1")
"""Foreign model files (ncnn) converted to canonical tensors, keyed by the files' bytes."""
HALOS = Kind("halos", ".json", "halo-probe/1")
"""Measured halos, keyed by the weights and the error bound."""
CALIBRATIONS = Kind("int8", ".json", "calibration/3")
"""int8 activation ranges, keyed by the weights and the calibration pixels."""
GRAPHS = Kind("openvino", ".onnx", "openvino-engine/6")  # 6: int8 bias correction
"""Exported graphs for OpenVINO, keyed by the weights, precision, calibration and OpenVINO."""
PRECISION_CHOICES = Kind("precision", ".json", "precision-auto/1")
"""``--precision auto``'s measured choice, keyed by the weights, device, engine and crops."""


def cache_dir() -> Path:
    """Where entries are kept (the env var wins, then XDG, then ~/.cache)."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "esrgan-pipelines"


def entry_path(kind: Kind, key: str, label: str = "") -> Path:
    """The file of an entry; ``label`` (e.g. the model's name or the precision) helps a reader."""
    name = f"{label}-{key[:32]}" if label else key[:32]
    return cache_dir() / kind.folder / f"{name}{kind.suffix}"


# --------------------------------------------------------------------------- hashes


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 of the architecture (class and config) and every parameter and buffer's bytes.

    The config is part of it because two networks can share weights and differ in what surrounds
    them (realesr-animevideov3 x2 and x4 share their convolutions; x2 resizes the x4 output).
    The memory layout is not (a channels_last copy hashes the same).
    """
    import torch

    config = getattr(module, "config", None)
    digest = hashlib.sha256(f"{type(module).__name__}|{config!r}".encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def tensors_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (in sorted name order)."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(
            tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        )
    return digest.hexdigest()


# --------------------------------------------------------------------------- entries


def load(path: Path, read: Callable[[Path], T | None]) -> T | None:
    """The entry at ``path`` as ``read`` parses it; None when absent, unreadable or invalid
    (``read`` returns None for an entry that does not verify), with a note for a bad one."""
    if not path.is_file():
        return None
    try:
        found = read(path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        log.warning("cache entry %s is corrupt (%s); building it again", path, exc)
        return None
    if found is None:
        log.warning("cache entry %s is corrupt or not for this model; building it again", path)
    return found


def store(path: Path, write: Callable[[Path], object]) -> bool:
    """Write an entry atomically with ``write(temporary path)``; False (and a one-line note,
    once per folder) when the cache cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(path) as tmp:
            write(tmp)
    except (OSError, SafetensorError) as exc:  # a full disk is a SafetensorError
        _note_unwritable(path.parent, getattr(exc, "strerror", None) or str(exc))
        return False
    return True


@functools.cache
def _note_unwritable(folder: Path, reason: str) -> None:
    log.warning("note: cache folder %s is not writable (%s); working without it", folder, reason)


def cached(
    path: Path,
    build: Callable[[], T],
    read: Callable[[Path], T | None],
    write: Callable[[Path, T], object],
) -> T:
    """The entry at ``path``, else ``build()`` stored there (best effort) and returned."""
    found = load(path, read)
    if found is not None:
        return found
    value = build()
    store(path, lambda tmp: write(tmp, value))
    return value


# --------------------------------------------------------------------------- converted models


def cached_conversion(sources: Sequence[Path], convert: Callable[[], Conversion]) -> Conversion:
    """The cached conversion of a foreign model's ``sources``; built and stored when absent or
    corrupt. Entries carry a hash of their own tensors, checked when read."""
    key = MODELS.key(file_sha256(sources))
    path = entry_path(MODELS, key, sources[0].stem)

    def read(entry: Path) -> Conversion | None:
        return read_conversion(entry, key)

    def write(tmp: Path, value: Conversion) -> None:
        from safetensors.torch import save_file

        state, metadata = value
        stored = {**metadata, "source_key": key, "tensors_sha256": tensors_sha256(state)}
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=stored)

    return cached(path, convert, read, write)


def read_conversion(entry: Path, key: str) -> Conversion | None:
    """A conversion entry's tensors and metadata if it is whole and belongs to ``key``."""
    with safe_open(str(entry), framework="pt") as f:
        metadata = dict(f.metadata() or {})
        state = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    if metadata.pop("source_key", None) != key:
        return None
    if metadata.pop("tensors_sha256", None) != tensors_sha256(state):
        return None
    return state, metadata
