"""Model folders: every model file in a folder, named by its stem (as chaiNNer and Upscayl keep them).

Folders come from ``$ESRGAN_MODELS_DIR`` (several separated by ``os.pathsep``); ``esrgan
--models-dir DIR`` puts ``DIR`` first in it for the command and everything it starts (pipelines,
Dask workers on this machine). ``--model 4x-Nomos8kSC`` then finds ``4x-Nomos8kSC.pth`` in one
of them. A name in an earlier folder wins over a later one; within a folder a ``.safetensors``
file wins over a ``.pth``, ``.pt``, ``.ckpt`` or ncnn ``.param`` of the same stem. Listing a
folder reads no model file (and imports no torch).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from esrgan_plugin.errors import UsageError

MODELS_DIR_ENV = "ESRGAN_MODELS_DIR"
"""Environment variable naming model folders (``os.pathsep``-separated)."""

MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".param")
"""Suffixes of model files in a folder, in order of preference for one stem (an ncnn model is
its ``.param``; a ``.bin`` beside it is its weights, not a model of its own)."""


@dataclass(frozen=True)
class FolderModel:
    """One model file found in a models folder."""

    name: str
    path: Path
    folder: Path


def models_dirs() -> list[Path]:
    """The model folders named by ``$ESRGAN_MODELS_DIR``, in order."""
    value = os.environ.get(MODELS_DIR_ENV, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def use_models_dirs(folders: Iterable[str]) -> None:
    """Put ``folders`` first in ``$ESRGAN_MODELS_DIR`` (for this process and its children);
    a folder that does not exist is a one-line usage error."""
    given = [Path(f).expanduser() for f in folders]
    for folder in given:
        if not folder.is_dir():
            raise UsageError(f"--models-dir {folder}: not a folder")
    if not given:
        return
    rest = os.environ.get(MODELS_DIR_ENV, "")
    os.environ[MODELS_DIR_ENV] = os.pathsep.join([*(str(f) for f in given), rest]).rstrip(
        os.pathsep
    )


def folder_models(folders: Iterable[Path] | None = None) -> dict[str, FolderModel]:
    """Stem -> model file, over ``folders`` (default: :func:`models_dirs`); unreadable or
    missing folders are skipped (``esrgan models`` says so)."""
    found: dict[str, FolderModel] = {}
    for folder in models_dirs() if folders is None else folders:
        for model in _scan(folder):
            found.setdefault(model.name, model)
    return found


def _scan(folder: Path) -> list[FolderModel]:
    """The folder's models, listed again only when the folder changes (its modification time
    changes when a file is added, removed or renamed): names are resolved on every block."""
    try:
        stamp = folder.stat().st_mtime_ns
    except OSError:
        return []
    return list(_scan_at(folder, stamp))


@functools.lru_cache(maxsize=64)
def _scan_at(folder: Path, stamp: int) -> tuple[FolderModel, ...]:
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        return ()
    best: dict[str, Path] = {}
    for path in files:
        suffix = path.suffix.lower()
        if suffix not in MODEL_SUFFIXES or path.name.startswith("."):
            continue
        if suffix == ".param" and not path.with_suffix(".bin").is_file():
            continue
        current = best.get(path.stem)
        if current is None or _rank(path) < _rank(current):
            best[path.stem] = path
    return tuple(FolderModel(stem, path, folder) for stem, path in sorted(best.items()))


def _rank(path: Path) -> int:
    return MODEL_SUFFIXES.index(path.suffix.lower())


def folder_model(name: str) -> Path | None:
    """The file of a folder model called ``name`` (exactly, else ignoring case), or None."""
    models = folder_models()
    if name in models:
        return models[name].path
    lowered = {key.lower(): model for key, model in models.items()}
    found = lowered.get(name.lower())
    return found.path if found is not None else None
