"""The models the napari widget offers: installed catalogue entries, a folder's files, a file.

Without Qt, so that the lists are tested on their own: catalogue names come from
:mod:`esrgan_plugin.models.catalogue` (only those whose files are installed), a folder offers
every model file in it (not its sub-folders) by the suffixes ``--model`` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".param")
"""Files ``--model`` loads (an ncnn ``.param`` needs its ``.bin`` beside it)."""


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model list: what it shows and what ``model=`` receives."""

    label: str
    value: str
    description: str = ""
    """Shown as the entry's tooltip (a catalogue model's purpose, a file's full path)."""


def catalogue_choices() -> tuple[list[ModelChoice], str]:
    """The installed catalogue models (described by their purpose) and the default one's name."""
    from esrgan_plugin.models.catalogue import catalogue

    known = catalogue()
    choices = [
        ModelChoice(name, name, entry.purpose)
        for name, entry in known.entries.items()
        if entry.path() is not None
    ]
    return choices, known.default_name()


def folder_choices(folder: str | Path) -> list[ModelChoice]:
    """The model files directly inside ``folder``, by name; ncnn files only with their .bin."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    found = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in MODEL_SUFFIXES:
            continue
        if path.suffix.lower() == ".param" and not path.with_suffix(".bin").is_file():
            continue
        found.append(ModelChoice(f"{folder.name}/{path.name}", str(path), str(path)))
    return found


def file_choice(path: str | Path) -> ModelChoice:
    """A model file chosen by the user, shown by its name."""
    path = Path(path)
    return ModelChoice(path.name, str(path), str(path))
