"""The two models shipped inside the package (``default-psnr``, ``default-gan``), as catalogue entries.

Listing them imports no torch: their architecture, scale and size are stated as data
(:class:`~esrgan_plugin.models.catalogue.ModelFacts`, checked against the configuration by the
tests) and the configuration is built on first use.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from esrgan_plugin.models.catalogue import ModelEntry, ModelFacts

SHIPPED_MODELS = {
    "default-psnr": "default-psnr.safetensors",
    "default-gan": "default-gan.safetensors",
}
"""Name -> file inside ``esrgan_plugin/weights``; trained by ``make default-models``."""

SHIPPED_FACTS = ModelFacts(architecture="RRDBNet", scale=4, parameters=758_755)
"""What :func:`shipped_config` builds, as ``esrgan models`` lists it."""

_PURPOSES = {
    "default-psnr": "small CPU-trained demo model (PSNR-oriented); fallback default",
    "default-gan": "small CPU-trained demo model (GAN stage, random-VGG perceptual loss)",
}


def shipped_config() -> Any:
    """The shipped models' RRDBNet configuration (nf 32, nb 4, gc 16, x4)."""
    from esrgan_plugin.arch.rrdbnet import RRDBNetConfig

    return RRDBNetConfig(num_features=32, num_blocks=4, growth_channels=16)


def shipped_path(name: str) -> Path:
    return Path(str(resources.files("esrgan_plugin") / "weights" / SHIPPED_MODELS[name]))


def shipped_models() -> list[ModelEntry]:
    """The ``esrgan.models`` entry point of this package: its two shipped models."""

    def locate(name: str) -> Path | None:
        path = shipped_path(name)
        return path if path.is_file() else None

    return [
        ModelEntry(
            name=name,
            config=shipped_config,
            purpose=_PURPOSES[name],
            licence="Apache-2.0 (this project)",
            source="trained here with `esrgan train` on scikit-image's photos",
            package="esrgan-pipelines",
            locate=lambda name=name: locate(name),  # type: ignore[misc]
            install_hint="rebuild it with `make default-models` or pass --model PATH",
            facts=SHIPPED_FACTS,
        )
        for name in SHIPPED_MODELS
    ]
