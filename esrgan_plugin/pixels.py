"""Image pixels as the networks see them: float32 in [0, 1], and back to the image's own dtype."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from esrgan_plugin.errors import InferenceError

if TYPE_CHECKING:
    import torch


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16/float image -> float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image.astype(np.float32), 0.0, 1.0)
    raise InferenceError(f"unsupported image dtype {image.dtype}; expected uint8, uint16 or float")


def from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 in [0, 1] -> ``dtype`` (rounded for integers).

    Done with torch where it is loaded, whose element-wise ops use every core: on a 16k x 16k
    output this is seconds, not tens of seconds; else (the fast start) with NumPy, which rounds
    the same float32 products and sums to the same integers.
    """
    if dtype not in (np.uint8, np.uint16):
        return image.astype(dtype)
    peak = 255.0 if dtype == np.uint8 else 65535.0
    if "torch" not in sys.modules:
        rounded = np.ascontiguousarray(image, dtype=np.float32) * np.float32(peak)
        rounded += np.float32(0.5)
        if dtype == np.uint8:
            return rounded.astype(np.uint8)
        return rounded.astype(np.int32).astype(np.uint16)
    import torch

    scaled = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).mul(peak).add_(0.5)
    if dtype == np.uint8:
        return scaled.to(torch.uint8).numpy()
    return scaled.to(torch.int32).numpy().astype(np.uint16)


def to_tensor(image: np.ndarray, channels: int) -> torch.Tensor:
    """uint8/uint16/float HWC or HW image -> NCHW float32 in [0, 1] with ``channels`` channels
    (alpha dropped; grey repeated to colour, colour averaged to grey)."""
    import torch

    pixels = to_float(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    pixels = pixels[..., :3] if pixels.shape[2] == 4 else pixels
    if pixels.shape[2] != channels:
        pixels = (
            np.repeat(pixels[..., :1], channels, axis=2)
            if pixels.shape[2] == 1
            else pixels.mean(axis=2, keepdims=True)
        )
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]
