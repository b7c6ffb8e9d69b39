"""ESRGAN super-resolution: the RRDBNet generator, checkpoint loading, tiled inference.

Usable as a plain library::

    from esrgan_plugin import load_model, upscale
    model = load_model("RealESRGAN_x4plus.pth")
    big = upscale(image, model, tile=256, precision="bf16")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrgan_plugin.arch import RRDBNet, RRDBNetConfig, SRResNet, SRResNetConfig
    from esrgan_plugin.errors import (
        CheckpointError,
        EsrganError,
        InferenceError,
        InterpolationError,
    )
    from esrgan_plugin.inference import Upscaler, upscale
    from esrgan_plugin.interpolate import (
        interpolate_images,
        interpolate_models,
        interpolate_state_dicts,
    )
    from esrgan_plugin.models.loading import (
        LoadedModel,
        build_from_state_dict,
        load_model,
        save_model,
    )
    from esrgan_plugin.options import UpscaleOptions

_EXPORTS = {
    "RRDBNet": "esrgan_plugin.arch",
    "RRDBNetConfig": "esrgan_plugin.arch",
    "SRResNet": "esrgan_plugin.arch",
    "SRResNetConfig": "esrgan_plugin.arch",
    "LoadedModel": "esrgan_plugin.models.loading",
    "build_from_state_dict": "esrgan_plugin.models.loading",
    "load_model": "esrgan_plugin.models.loading",
    "save_model": "esrgan_plugin.models.loading",
    "CheckpointError": "esrgan_plugin.errors",
    "EsrganError": "esrgan_plugin.errors",
    "InferenceError": "esrgan_plugin.errors",
    "InterpolationError": "esrgan_plugin.errors",
    "Upscaler": "esrgan_plugin.inference",
    "upscale": "esrgan_plugin.inference",
    "UpscaleOptions": "esrgan_plugin.options",
    "interpolate_images": "esrgan_plugin.interpolate",
    "interpolate_models": "esrgan_plugin.interpolate",
    "interpolate_state_dicts": "esrgan_plugin.interpolate",
}


def __getattr__(name: str) -> Any:
    """Import the public names on first use, so that ``import esrgan_plugin.hooks`` (what the
    pipeline host and ``esrgan --help`` do) does not load torch."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'esrgan_plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "CheckpointError",
    "EsrganError",
    "InferenceError",
    "InterpolationError",
    "LoadedModel",
    "RRDBNet",
    "RRDBNetConfig",
    "SRResNet",
    "SRResNetConfig",
    "UpscaleOptions",
    "Upscaler",
    "build_from_state_dict",
    "interpolate_images",
    "interpolate_models",
    "interpolate_state_dicts",
    "load_model",
    "save_model",
    "upscale",
]
