"""Pixel conversions for training data: RGB views, [0, 1] floats, bicubic LR, mod-crop."""

from __future__ import annotations

import numpy as np

from esrgan_plugin.pixels import to_float as to_float32
from pipelines.api import imresize

__all__ = ["downscale", "mod_crop", "to_float32", "to_rgb"]
from training.errors import TrainingError

FLOAT_KINDS = ("f",)
INT_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W, 3) view of a grey, grey+alpha, RGB or RGBA image; uint8/uint16 kept, floats -> float32."""
    array = np.asarray(array)
    if array.dtype not in INT_DTYPES and array.dtype.kind not in FLOAT_KINDS:
        raise TrainingError(
            f"{name}: unsupported sample type {array.dtype}; use uint8, uint16 or float"
        )
    if array.dtype.kind in FLOAT_KINDS:
        array = array.astype(np.float32, copy=False)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise TrainingError(
            f"{name}: expected an (H, W) or (H, W, C) image with C in 1-4, got shape {array.shape}"
        )
    channels = array.shape[2]
    if channels <= 2:
        return np.repeat(array[:, :, :1], 3, axis=2)
    return array[:, :, :3]


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR image by MATLAB bicubic ``imresize``; integers stay in their dtype (as saved LR files)."""
    if scale == 1:
        return hr.copy()
    shape = (hr.shape[0] // scale, hr.shape[1] // scale)
    lr = imresize(hr, output_shape=shape)
    if lr.dtype.kind in FLOAT_KINDS:
        lr = np.clip(lr, 0.0, 1.0).astype(np.float32)
    return lr


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` cropped at the bottom/right to a multiple of ``scale`` in both dimensions."""
    height, width = image.shape[0], image.shape[1]
    return image[: height - height % scale, : width - width % scale]
