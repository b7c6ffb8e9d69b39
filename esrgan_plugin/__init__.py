"""ESRGAN super-resolution: the RRDBNet generator, checkpoint loading, tiled inference.

Usable as a plain library::

    from esrgan_plugin import load_model, upscale
    model = load_model("RealESRGAN_x4plus.pth")
    big = upscale(image, model, tile=256, precision="bf16")
"""

from esrgan_plugin.arch import RRDBNet, RRDBNetConfig, SRResNet, SRResNetConfig
from esrgan_plugin.checkpoint import LoadedModel, build_from_state_dict, load_model, save_model
from esrgan_plugin.errors import CheckpointError, EsrganError, InferenceError, InterpolationError
from esrgan_plugin.inference import UpscaleOptions, Upscaler, upscale
from esrgan_plugin.interpolate import (
    interpolate_images,
    interpolate_models,
    interpolate_state_dicts,
)

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
