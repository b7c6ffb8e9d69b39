"""Models addressed by name: ``default``, the shipped ones and the catalogue's; anything else is a path.

``default`` is the best installed default (``realesrgan-x4plus`` when its weight package is
installed, else ``default-psnr``); any other catalogue name (``esrgan models``) resolves to its
installed file.
"""

from __future__ import annotations

import os
from pathlib import Path

from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.models.catalogue import DEFAULT_NAME, catalogue, resolve_name
from esrgan_plugin.models.shipped import SHIPPED_MODELS, shipped_path


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The file of a shipped or catalogue model name; any other value is taken as a path."""
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
    resolved = resolve_name(name)
    return Path(name_or_path) if resolved is None else resolved
