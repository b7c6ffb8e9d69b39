"""``builtin.denoise``: scikit-image, SciPy and OpenCV denoising filters, with the halo each one needs.

Colour channels are filtered together (``channel_axis``); an alpha channel is left as it is.
Integer images are filtered as floats in [0, 1] and rounded back to their own bit depth.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from pipelines.runner.registry import StageParams

Method = Literal["gaussian", "median", "bilateral", "nl_means", "tv"]

METHOD_PARAMS: dict[str, tuple[str, ...]] = {
    "gaussian": ("sigma",),
    "median": ("size",),
    "bilateral": ("sigma_color", "sigma_spatial"),
    "nl_means": ("h", "patch_size", "patch_distance"),
    "tv": ("weight", "max_num_iter"),
}
"""Which parameters each method uses; setting another method's parameter is an error."""

GAUSSIAN_TRUNCATE = 4.0


class DenoiseParams(StageParams):
    """Parameters of ``builtin.denoise``."""

    method: Method = Field(
        "gaussian",
        description="gaussian, median, bilateral, nl_means (non-local means) or tv (total variation)",
    )
    sigma: float = Field(1.0, gt=0, le=100, description="gaussian: standard deviation in pixels")
    size: int = Field(3, ge=1, le=101, description="median: window side in pixels (odd)")
    sigma_color: float | None = Field(
        None,
        gt=0,
        description="bilateral: radiometric spread in [0, 1] units; default: twice the estimated noise level",
    )
    sigma_spatial: float = Field(
        1.0, gt=0, le=50, description="bilateral: spatial standard deviation in pixels"
    )
    h: float | None = Field(
        None,
        gt=0,
        description="nl_means: filter strength in [0, 1] units; default 0.8 x the estimated noise",
    )
    patch_size: int = Field(
        5, ge=1, le=31, description="nl_means: side of the compared patches in pixels"
    )
    patch_distance: int = Field(6, ge=1, le=50, description="nl_means: search radius in pixels")
    weight: float = Field(0.1, gt=0, description="tv: denoising weight; larger removes more")
    max_num_iter: int = Field(
        200, ge=1, le=10_000, description="tv: iterations of Chambolle's algorithm"
    )

    @model_validator(mode="after")
    def _only_this_methods_params(self) -> DenoiseParams:
        allowed = ("method", *METHOD_PARAMS[self.method])
        extra = sorted(self.model_fields_set - set(allowed))
        if extra:
            owner = next(m for m, names in METHOD_PARAMS.items() if extra[0] in names)
            raise ValueError(f"{extra[0]} is a parameter of method {owner}, not {self.method}")
        if self.method == "median" and self.size % 2 == 0:
            raise ValueError(f"median size must be odd, got {self.size}")
        return self


def denoise_halo(params: DenoiseParams) -> int:
    """Pixels of context one output pixel depends on, for these parameters."""
    if params.method == "gaussian":
        return int(GAUSSIAN_TRUNCATE * params.sigma + 0.5)
    if params.method == "median":
        return params.size // 2
    if params.method == "bilateral":
        return _bilateral_window(params.sigma_spatial) // 2
    if params.method == "nl_means":
        return params.patch_size // 2 + params.patch_distance
    return 2 * params.max_num_iter  # tv: each iteration widens the stencil by two pixels


def _bilateral_window(sigma_spatial: float) -> int:
    return max(5, 2 * math.ceil(3 * sigma_spatial) + 1)  # scikit-image's default win_size


def denoise(image: np.ndarray, params: DenoiseParams) -> np.ndarray:
    """Denoise an (H, W) or (H, W, C) image; same shape and dtype out."""
    if image.ndim == 3 and image.shape[2] in (2, 4):
        colour, alpha = image[..., :-1], image[..., -1:]
        return np.concatenate([denoise(colour, params), alpha], axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return denoise(image[..., 0], params)[..., None]
    if params.method == "median":
        from scipy import ndimage

        size = (params.size, params.size) + (1,) * (image.ndim - 2)
        return ndimage.median_filter(image, size=size, mode="reflect")
    pixels = _to_float(image)
    result = _filter(pixels, params, channel_axis=-1 if image.ndim == 3 else None)
    return _from_float(result, image.dtype)


def _filter(pixels: np.ndarray, params: DenoiseParams, channel_axis: int | None) -> np.ndarray:
    from skimage import filters, restoration

    if params.method == "gaussian":
        return filters.gaussian(
            pixels,
            sigma=params.sigma,
            truncate=GAUSSIAN_TRUNCATE,
            mode="reflect",
            channel_axis=channel_axis,
            preserve_range=True,
        )
    if params.method == "bilateral":
        return _bilateral(pixels, params, channel_axis)
    if params.method == "nl_means":
        sigma = float(np.mean(restoration.estimate_sigma(pixels, channel_axis=channel_axis)))
        h = params.h if params.h is not None else max(0.8 * sigma, 1e-3)
        return restoration.denoise_nl_means(
            pixels,
            h=h,
            sigma=sigma,
            patch_size=params.patch_size,
            patch_distance=params.patch_distance,
            fast_mode=True,
            channel_axis=channel_axis,
        )
    return restoration.denoise_tv_chambolle(
        pixels, weight=params.weight, max_num_iter=params.max_num_iter, channel_axis=channel_axis
    )


def _bilateral(pixels: np.ndarray, params: DenoiseParams, channel_axis: int | None) -> np.ndarray:
    """OpenCV's bilateral filter (scikit-image's lowered PSNR on noisy photos in our measurements).

    ``sigma_color`` defaults to twice the estimated noise level, so edges well above the noise
    are kept.
    """
    import cv2
    from skimage import restoration

    sigma_color = params.sigma_color
    if sigma_color is None:
        noise = float(np.mean(restoration.estimate_sigma(pixels, channel_axis=channel_axis)))
        sigma_color = max(2.0 * noise, 1e-3)
    window = _bilateral_window(params.sigma_spatial)
    source = pixels.astype(np.float32)
    if source.ndim == 3 and source.shape[2] not in (1, 3):
        planes = [
            cv2.bilateralFilter(
                np.ascontiguousarray(source[..., i]),
                window,
                sigma_color,
                params.sigma_spatial,
                borderType=cv2.BORDER_REFLECT,
            )
            for i in range(source.shape[2])
        ]
        return np.stack(planes, axis=2).astype(np.float64)
    result = cv2.bilateralFilter(
        source, window, sigma_color, params.sigma_spatial, borderType=cv2.BORDER_REFLECT
    )
    return result.reshape(pixels.shape).astype(np.float64)


def _to_float(image: np.ndarray) -> np.ndarray:
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float64) / np.iinfo(image.dtype).max
    return image.astype(np.float64)


def _from_float(result: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        peak = np.iinfo(dtype).max
        return np.clip(np.rint(result * peak), 0, peak).astype(dtype)
    return result.astype(dtype)
