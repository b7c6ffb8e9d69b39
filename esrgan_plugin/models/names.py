"""Models addressed by name: ``default``, the catalogue's, model folders'; anything else is a path.

In order: ``default`` (``realesrgan-x4plus`` when its weight package is installed, else
``default-psnr``); a catalogue name (``esrgan models``); the stem of a file in a model folder
(:mod:`esrgan_plugin.models.folders`); an existing path; another name of a catalogue model (an
alias such as Real-ESRGAN's ``RealESRGAN_x4plus_anime_6B``, or the name with another case or
``_`` for ``-``), unless only a folder has it; a folder stem in another case. Anything else is a
one-line error with the closest names ("did you mean") and a pointer to ``esrgan models``.
Nothing here imports torch, so these errors come at once.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.models.catalogue import (
    DEFAULT_NAME,
    catalogue,
    installed_path,
    normalise_name,
)
from esrgan_plugin.models.folders import MODEL_SUFFIXES, folder_model, folder_models
from esrgan_plugin.models.shipped import SHIPPED_MODELS, shipped_path

LISTING_HINT = "`esrgan models` lists the model names (--models-dir DIR adds a folder's files)"

SUGGESTION_CUTOFF = 0.75
"""Smallest similarity (difflib's ratio) of a suggested name to what was typed."""
SUGGESTION_SPREAD = 0.1
"""Names less similar than the closest one by more than this are not suggested with it."""


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The file of a shipped, catalogue or folder model name; any other value is a path, which
    must exist (else a one-line error suggesting the closest names)."""
    name = str(name_or_path)
    if name == DEFAULT_NAME:
        name = catalogue().default_name()
    if name in SHIPPED_MODELS:
        path = shipped_path(name)
        if not path.is_file():
            raise CheckpointError(
                f"shipped model {name!r} is missing from this installation ({path}); "
                "rebuild it with `make default-models` or pass --model PATH"
            )
        return path
    cat = catalogue()
    entry = cat.entries.get(name)
    if entry is not None:
        return installed_path(entry, name)
    stems = folder_models()
    if name in stems:
        return stems[name].path
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    loose = cat.get(name)  # another name of a catalogue model (an alias, other case or '_')
    in_folder = folder_model(name) if _looks_like_a_name(name) else None
    if loose is not None and (in_folder is None or loose.path() is not None):
        return installed_path(loose, name)
    if in_folder is not None:
        return in_folder
    raise CheckpointError(missing_model_message(name))


def _looks_like_a_name(value: str) -> bool:
    """No folder part and no model file suffix: a name rather than a path."""
    return (
        os.sep not in value
        and "/" not in value
        and Path(value).suffix.lower() not in (*MODEL_SUFFIXES, ".bin")
    )


def known_names() -> list[str]:
    """Every name ``--model`` accepts: ``default``, the catalogue's names and aliases, and the
    model folders' stems."""
    cat = catalogue()
    names = [DEFAULT_NAME, *cat.entries]
    names += [alias for entry in cat.entries.values() for alias in entry.aliases]
    names += list(folder_models())
    return names


def suggestions(value: str, limit: int = 3) -> list[str]:
    """The names closest to ``value`` (or to its stem, for a path), as canonical names."""
    cat = catalogue()
    loose = cat.loose_names()
    by_loose: dict[str, str] = {}
    for name in known_names():
        entry = loose.get(normalise_name(name))
        by_loose.setdefault(normalise_name(name), entry.name if entry is not None else name)
    query = normalise_name(Path(value).stem if not _looks_like_a_name(value) else value)
    scored = sorted(
        ((difflib.SequenceMatcher(None, query, name).ratio(), name) for name in by_loose),
        reverse=True,
    )
    best = scored[0][0] if scored else 0.0
    found: list[str] = []
    for score, match in scored:
        if score < max(SUGGESTION_CUTOFF, best - SUGGESTION_SPREAD):
            break
        if by_loose[match] not in found:
            found.append(by_loose[match])
    return found[:limit]


def missing_model_message(value: str) -> str:
    """The one-line error for a ``--model`` value that is neither a model name nor a file."""
    close = suggestions(value)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    if _looks_like_a_name(value):
        return f"{value!r} is not a model name or a model file; {hint}{LISTING_HINT}"
    if close:
        return f"{value}: model file not found; {hint}{LISTING_HINT}"
    return f"{value}: model file not found"
