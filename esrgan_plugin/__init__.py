"""ESRGAN super-resolution: the RRDBNet generator, checkpoint loading, tiled inference.

Usable as a plain library::

    from esrgan_plugin import load_model, upscale
    model = load_model("RealESRGAN_x4plus.pth")
    big = upscale(image, model, tile=256, precision="bf16")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type checkers see the names; at run time __getattr__ imports them
    from esrgan_plugin.arch import RRDBNet, RRDBNetConfig, SRResNet, SRResNetConfig
    from esrgan_plugin.checkpoint import (
        LoadedModel,
        build_from_state_dict,
        load_model,
        save_model,
    )
    from esrgan_plugin.errors import (
        CheckpointError,
        EsrganError,
        InferenceError,
        InterpolationError,
    )
    from esrgan_plugin.inference import UpscaleOptions, Upscaler, upscale
    from esrgan_plugin.interpolate import (
        interpolate_images,
        interpolate_models,
        interpolate_state_dicts,
    )

_EXPORTS: dict[str, str] = {
    "CheckpointError": "esrgan_plugin.errors",
    "EsrganError": "esrgan_plugin.errors",
    "InferenceError": "esrgan_plugin.errors",
    "InterpolationError": "esrgan_plugin.errors",
    "LoadedModel": "esrgan_plugin.checkpoint",
    "RRDBNet": "esrgan_plugin.arch",
    "RRDBNetConfig": "esrgan_plugin.arch",
    "SRResNet": "esrgan_plugin.arch",
    "SRResNetConfig": "esrgan_plugin.arch",
    "UpscaleOptions": "esrgan_plugin.inference",
    "Upscaler": "esrgan_plugin.inference",
    "build_from_state_dict": "esrgan_plugin.checkpoint",
    "interpolate_images": "esrgan_plugin.interpolate",
    "interpolate_models": "esrgan_plugin.interpolate",
    "interpolate_state_dicts": "esrgan_plugin.interpolate",
    "load_model": "esrgan_plugin.checkpoint",
    "save_model": "esrgan_plugin.checkpoint",
    "upscale": "esrgan_plugin.inference",
}
"""Public name -> the module defining it, imported on first use (PEP 562).

Lazy so that ``import esrgan_plugin.cli`` does not import torch: the CLI sets
``OMP_WAIT_POLICY`` before torch's OpenMP runtime starts (see ``esrgan_plugin.runtime``)."""


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
