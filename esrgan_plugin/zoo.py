"""Models shipped with the package, addressed by name (``default``, ``default-psnr``, ``default-gan``)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from esrgan_plugin.errors import CheckpointError

SHIPPED_MODELS = {
    "default-psnr": "default-psnr.safetensors",
    "default-gan": "default-gan.safetensors",
}
"""Name -> file inside ``esrgan_plugin/weights``; trained by ``make default-models``."""

ALIASES = {"default": "default-psnr"}


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A shipped model's file for a known name; any other value is taken as a path."""
    name = str(name_or_path)
    name = ALIASES.get(name, name)
    if name not in SHIPPED_MODELS:
        return Path(name_or_path)
    path = Path(str(resources.files("esrgan_plugin") / "weights" / SHIPPED_MODELS[name]))
    if not path.is_file():
        raise CheckpointError(
            f"shipped model {name!r} is missing from this installation ({path}); "
            "rebuild it with `make default-models` or pass --model PATH"
        )
    return path
