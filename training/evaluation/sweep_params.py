"""The sweep's parameters (``esrgan sweep`` and the ``esrgan.sweep`` stage), kept light to import:
listing the stages must not load the metrics, NumPy's heavier friends or torch."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator

from pipelines.api import StageParams

_RANGE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")


def parse_alphas(text: str) -> list[float]:
    """``"0:1:0.1"`` (start:stop:step, stop included) or ``"0,0.5,1"`` as sorted alphas in [0, 1]."""
    match = _RANGE.match(text)
    try:
        if match:
            start, stop, step = (float(g) for g in match.groups())
            if not step > 0:
                raise ValueError(f"alphas {text!r}: the step must be positive")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, 10) for i in range(max(count, 0))]
        else:
            values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        if "step" in str(exc):
            raise
        raise ValueError(
            f"alphas {text!r}: expected start:stop:step (e.g. 0:1:0.1) or a list (0,0.5,1)"
        ) from None
    if not values:
        raise ValueError(f"alphas {text!r}: no alpha in it")
    bad = [v for v in values if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
    if bad:
        raise ValueError(f"alphas {text!r}: {bad[0]} is outside [0, 1]")
    return sorted(set(values))


class SweepParams(StageParams):
    """What a sweep runs: the two models, the alphas, the images, the metrics and the report."""

    psnr_model: str = Field(description="the PSNR-oriented model (alpha 0): a file or model name")
    gan_model: str = Field(description="the GAN model (alpha 1), of the same architecture")
    alphas: str = Field(
        "0:1:0.1", description="start:stop:step (stop included) or a comma-separated list"
    )
    hr: str | None = Field(None, description="folder of HR images (LR made with MATLAB bicubic)")
    lr: str | None = Field(None, description="folder of LR images (paired with hr if both given)")
    output: str = Field(
        description="report folder: results.csv/json, perception-distortion.png, index.html"
    )
    metrics: str | None = Field(
        None, description="comma-separated metrics (default psnr,ssim,niqe,lr-psnr)"
    )
    crop_border: int | None = Field(None, ge=0, description="border crop (default: the scale)")
    niqe_params: str | None = Field(None, description="NIQE pristine model file (default: shipped)")
    ma_model: str | None = Field(None, description="Ma's model file for the perceptual index")
    crop_size: int = Field(96, ge=16, le=512, description="side of the report's crops (SR pixels)")
    crops_per_image: int = Field(3, ge=1, le=8, description="crops offered per image in the report")
    tile: int | None = Field(None, ge=0, description="tile size in LR pixels (0 = whole image)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("fp32", description="precision")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    overwrite: bool = Field(False, description="replace an existing report in the folder")

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, value: str) -> str:
        parse_alphas(value)
        return value


__all__ = ["SweepParams", "parse_alphas"]
