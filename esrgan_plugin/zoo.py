"""Models addressed by name: the shipped ones (``default-psnr``, ``default-gan``) and the catalogue's.

``default`` is the best installed default (``realesrgan-x4plus`` when its weight package is
installed, else ``default-psnr``); any other catalogue name (``esrgan models``) resolves to its
installed file; everything else is taken as a path.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from esrgan_plugin.arch.rrdbnet import RRDBNetConfig
from esrgan_plugin.catalogue import ModelEntry
from esrgan_plugin.errors import CheckpointError

SHIPPED_MODELS = {
    "default-psnr": "default-psnr.safetensors",
    "default-gan": "default-gan.safetensors",
}
"""Name -> file inside ``esrgan_plugin/weights``; trained by ``make default-models``."""

SHIPPED_CONFIG = RRDBNetConfig(num_features=32, num_blocks=4, growth_channels=16)

_PURPOSES = {
    "default-psnr": "small CPU-trained demo model (PSNR-oriented); fallback default",
    "default-gan": "small CPU-trained demo model (GAN stage, random-VGG perceptual loss)",
}


def _shipped_path(name: str) -> Path:
    return Path(str(resources.files("esrgan_plugin") / "weights" / SHIPPED_MODELS[name]))


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The file of a shipped or catalogue model name; any other value is taken as a path."""
    from esrgan_plugin.catalogue import DEFAULT_NAME, catalogue, resolve_name

    name = str(name_or_path)
    if name == DEFAULT_NAME:
        name = catalogue().default_name()
    if name in SHIPPED_MODELS:
        path = _shipped_path(name)
        if not path.is_file():
            raise CheckpointError(
                f"shipped model {name!r} is missing from this installation ({path}); "
                "rebuild it with `make default-models` or pass --model PATH"
            )
        return path
    resolved = resolve_name(name)
    return Path(name_or_path) if resolved is None else resolved


def shipped_models() -> list[ModelEntry]:
    """The ``esrgan.models`` entry point of this package: its two shipped models."""

    def locate(name: str) -> Path | None:
        path = _shipped_path(name)
        return path if path.is_file() else None

    return [
        ModelEntry(
            name=name,
            config=SHIPPED_CONFIG,
            purpose=_PURPOSES[name],
            licence="Apache-2.0 (this project)",
            source="trained here with `esrgan train` on scikit-image's photos",
            package="esrgan-pipelines",
            locate=lambda name=name: locate(name),  # type: ignore[misc]
            install_hint="rebuild it with `make default-models` or pass --model PATH",
        )
        for name in SHIPPED_MODELS
    ]
