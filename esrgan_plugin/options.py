"""How to run a model: the one typed definition of the upscale options.

:class:`UpscaleOptions` is what :class:`~esrgan_plugin.inference.Upscaler` is built from; the
``esrgan.upscale`` stage's parameters extend it with the model, and ``esrgan upscale``'s
command-line options are generated from the fields of both, so bounds, defaults and help text are
written once.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from esrgan_plugin.errors import InferenceError
from pipelines.api import StageParams, describe_error

DEFAULT_HALO = None
"""No fixed halo: by default each model gets the halo it needs, measured (``esrgan_plugin.tiles.halo``)."""

MIN_TILE = 16
"""The smallest tile side, in input pixels."""

Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
AlphaMode = Literal["bicubic", "model"]
Engine = Literal["auto", "openvino", "onednn", "pytorch", "torch"]
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class UpscaleOptions(BaseModel):
    """Tiling, precision, device, output scale and alpha handling; immutable, validated on creation.

    A bad value raises pydantic's ``ValidationError`` (hosts report it by field);
    :meth:`checked` raises a one-line :class:`~esrgan_plugin.errors.InferenceError` instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tile: int | None = Field(
        None,
        ge=0,
        description=f"tile side in input pixels (0 = whole image, else at least {MIN_TILE}); "
        "default: from the model's halo and measured costs",
    )
    halo: int | None = Field(
        DEFAULT_HALO,
        ge=0,
        description="input pixels of context around each tile, cropped after upscaling; default: "
        "the halo the model needs for seamless tiles (measured once per model)",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        description="tiles of equal shape per forward pass (default: 1 on the CPU, where batching "
        "buys no speed, 4 on GPUs)",
    )
    precision: Precision = Field(
        "auto",
        description="auto = the fastest precision within 45 dB of fp32, measured once per model "
        "and device (cached); bf16 on CPUs with AVX512-BF16/AMX or CUDA; int8 = quantised, CPU only",
    )
    calibration: str | None = Field(
        None,
        description="int8: folder or image file to calibrate on (default: built-in photo crops)",
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    engine: Engine = Field(
        "auto",
        description="what runs the network: auto (the fastest installed engine that runs the "
        "request, `esrgan engines`), openvino (CPU), onednn (CPU, RRDBNet), pytorch (any "
        "device), or torch (onednn where it applies, else pytorch)",
    )
    outscale: float | None = Field(
        None, gt=0, le=16, description="final scale, if not the model's own (model, then resize)"
    )
    alpha_mode: AlphaMode = Field(
        "bicubic",
        description="how an alpha channel is upscaled: bicubic (exact on opaque alpha) or by the model",
    )
    channels_last: bool = Field(True, description="run the network in channels_last memory format")
    tta: bool = Field(
        False,
        description="x8 self-ensemble: average the outputs of the 8 flips and rotations of each tile "
        "(EDSR+/RCAN+; 8 times the work, a higher PSNR)",
    )

    @field_validator("tile")
    @classmethod
    def _tile_size(cls, value: int | None) -> int | None:
        if value and value < MIN_TILE:
            raise ValueError(f"must be 0 (whole image) or at least {MIN_TILE}")
        return value

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        name = value.strip().lower()
        if not _DEVICE.match(name):
            raise ValueError("must be one of auto, cpu, cuda, cuda:N, mps")
        return name

    @classmethod
    def checked(cls, **values: Any) -> UpscaleOptions:
        """Options from keyword values; a bad one is an :class:`InferenceError` naming it."""
        try:
            return cls(**values)
        except pydantic.ValidationError as exc:
            raise InferenceError(describe_error(exc)) from None

    def options(self) -> UpscaleOptions:
        """Just the options (for a subclass that adds more fields, such as the stage's model)."""
        values = {name: getattr(self, name) for name in UpscaleOptions.model_fields}
        return UpscaleOptions.model_construct(**values)


class UpscaleParams(UpscaleOptions, StageParams):
    """Parameters of ``esrgan.upscale``: the model (and an optional second one to interpolate
    with) plus every :class:`~esrgan_plugin.options.UpscaleOptions` field."""

    model: str = Field(
        "default",
        description="model file (.safetensors, .pth, .pt, ncnn .param) or a name from `esrgan models`; "
        "default: realesrgan-x4plus when installed, else the shipped default-psnr",
    )
    interpolate_with: str | None = Field(
        None,
        description="a second model of the same architecture to interpolate with, in memory (no file written)",
    )
    alpha: float | None = Field(
        None,
        ge=0,
        le=1,
        description="interpolation weight: (1 - alpha) * model + alpha * interpolate_with",
    )
    model_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="the SHA-256 the model file must have (a replaced file is refused); set for "
        "every task when a job is planned, so all workers run the same weights",
    )
    interpolate_with_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="the same for interpolate_with",
    )

    @model_validator(mode="after")
    def _interpolation_pair(self) -> UpscaleParams:
        if (self.interpolate_with is None) != (self.alpha is None):
            raise ValueError("interpolate_with and alpha go together: give both or neither")
        return self


UNCERTAINTY_GAIN = 5.0
"""Default gain of uncertainty maps: a map value of 1 (65535 in 16 bits) is an uncertainty of 0.2."""


class UncertaintyParams(UpscaleParams):
    """Parameters of ``esrgan.uncertainty``: those of ``esrgan.upscale`` (the map is of that
    output) plus the reference model and the map's gain (esrgan_plugin.uncertainty)."""

    uncertainty_reference: str | None = Field(
        None,
        description="a PSNR-oriented model paired with a GAN model: the map also shows where "
        "the two disagree (invented detail)",
    )
    uncertainty_gain: float = Field(
        UNCERTAINTY_GAIN,
        gt=0,
        description="map value = min(1, gain x uncertainty in [0, 1] units), written in the "
        "image's range (65535 in 16 bits)",
    )

    def reference_params(self) -> UpscaleParams | None:
        """The reference model's parameters: these options, with the reference as the model
        (and nothing else of the model: no interpolation, no expected hash)."""
        if self.uncertainty_reference is None:
            return None
        return UpscaleParams(**self.options().model_dump(), model=self.uncertainty_reference)


OPTION_NAMES: tuple[str, ...] = tuple(UpscaleOptions.model_fields)
"""The option fields, in declaration order."""
