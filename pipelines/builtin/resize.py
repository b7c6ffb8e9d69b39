"""``builtin.resize``: MATLAB-compatible bicubic resizing (antialiased when shrinking)."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field, model_validator

from pipelines.imresize import imresize
from pipelines.runner.registry import StageParams


class ResizeParams(StageParams):
    """Parameters of ``builtin.resize``: ``scale``, or ``width`` and/or ``height``."""

    scale: float | None = Field(
        None, gt=0, le=64, description="size factor (output = ceil(input x scale))"
    )
    width: int | None = Field(
        None,
        ge=1,
        description="output width in pixels (height follows the aspect ratio if not given)",
    )
    height: int | None = Field(
        None,
        ge=1,
        description="output height in pixels (width follows the aspect ratio if not given)",
    )

    @model_validator(mode="after")
    def _scale_or_size(self) -> ResizeParams:
        has_size = self.width is not None or self.height is not None
        if (self.scale is None) == (not has_size):
            raise ValueError("give either scale or width/height")
        return self


def resize_halo(params: ResizeParams) -> int:
    """Input pixels of context: the bicubic kernel's radius (2), widened by 1 / scale when shrinking.

    A resize given by width/height runs on whole images only, so the upscaling radius is given.
    """
    if params.scale is None:
        return 2
    return math.ceil(2 / min(params.scale, 1.0))


def resize_scale(params: ResizeParams) -> float | None:
    """The size factor when it does not depend on the image (``scale``), else None."""
    return params.scale


def resize(image: np.ndarray, params: ResizeParams) -> np.ndarray:
    """Resize with MATLAB's bicubic ``imresize``; same dtype and channels out."""
    if params.scale is not None:
        out = imresize(image, scale=params.scale)
    else:
        height, width = image.shape[:2]
        new_h = (
            params.height
            if params.height is not None
            else max(1, round(height * params.width / width))
        )
        new_w = (
            params.width
            if params.width is not None
            else max(1, round(width * params.height / height))
        )
        out = imresize(image, output_shape=(new_h, new_w))
    return out.astype(image.dtype, copy=False)
