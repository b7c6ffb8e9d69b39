"""Super-resolution evaluation metrics with the conventions of BasicSR and most SR papers.

PSNR and SSIM are computed in float64 on the 0..255 scale, optionally on the BT.601 luma (Y)
channel as MATLAB's ``rgb2ycbcr`` defines it, after removing ``crop_border`` pixels on each side.
SSIM follows Wang et al. (2004): an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
'valid' filtering, averaged over channels. PSNR and SSIM take uint8 RGB (H, W, 3) or grey
(H, W) images, so that the 0..255 scale is never ambiguous.
"""

from __future__ import annotations

import math

import numpy as np

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)
"""BT.601 luma weights for R, G, B in [0, 1], giving Y on the 8-bit 16..235 range."""

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_PEAK = 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Y channel (BT.601, MATLAB ``rgb2ycbcr``) of an (H, W, 3) RGB image, in float64 on 0..255.

    uint8/uint16 inputs are scaled by their dtype maximum; float inputs are taken to be in [0, 1].
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"rgb_to_y: expected an (H, W, 3) RGB image, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.integer):
        rgb = image.astype(np.float64) / np.iinfo(image.dtype).max
    else:
        rgb = image.astype(np.float64)
    return 16.0 + rgb @ _Y_WEIGHTS


def _prepare(image: np.ndarray, crop_border: int, test_y_channel: bool) -> np.ndarray:
    """Float64 (H, W, C) array on 0..255, border-cropped and reduced to Y if asked."""
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got dtype {image.dtype}")
    data = image.astype(np.float64)
    if data.ndim == 2:
        data = data[..., None]
    if crop_border:
        data = data[crop_border:-crop_border, crop_border:-crop_border]
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(
            f"crop_border={crop_border} leaves nothing of an image of shape {image.shape}"
        )
    if test_y_channel and data.shape[2] == 3:
        data = rgb_to_y(data / _PEAK)[..., None]
    elif test_y_channel and data.shape[2] != 1:
        raise ValueError(f"test_y_channel needs an RGB or grey image, got shape {image.shape}")
    return data


def _prepare_pair(
    img1: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Check that the two images match and ``crop_border`` is valid, then prepare both."""
    img1, img2 = np.asarray(img1), np.asarray(img2)
    if img1.shape != img2.shape:
        raise ValueError(f"images differ in shape: {img1.shape} vs {img2.shape}")
    if int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    crop = int(crop_border)
    return _prepare(img1, crop, test_y_channel), _prepare(img2, crop, test_y_channel)


def psnr(
    img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False
) -> float:
    """Peak signal-to-noise ratio in dB (peak 255) between two images; ``inf`` if identical."""
    a, b = _prepare_pair(img1, img2, crop_border, test_y_channel)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(_PEAK**2 / mse)


def _gaussian_window() -> np.ndarray:
    """The 11x11 Gaussian window (sigma 1.5, sum 1) of the reference SSIM implementation."""
    import cv2

    kernel = cv2.getGaussianKernel(_SSIM_WINDOW, _SSIM_SIGMA).astype(np.float64)
    return kernel @ kernel.T


def _filter_valid(channel: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Correlate a 2-D float64 array with ``window``, keeping only the fully covered ('valid') area."""
    import cv2

    margin = window.shape[0] // 2
    filtered = cv2.filter2D(channel, -1, window)
    return filtered[margin:-margin, margin:-margin]


def _ssim_channel(a: np.ndarray, b: np.ndarray, window: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) of two 2-D float64 arrays on the 0..255 scale."""
    c1 = (_SSIM_K1 * _PEAK) ** 2
    c2 = (_SSIM_K2 * _PEAK) ** 2
    mu1 = _filter_valid(a, window)
    mu2 = _filter_valid(b, window)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(a * a, window) - mu1_sq
    sigma2_sq = _filter_valid(b * b, window) - mu2_sq
    sigma12 = _filter_valid(a * b, window) - mu1_mu2
    numerator = (2.0 * mu1_mu2 + c1) * (2.0 * sigma12 + c2)
    denominator = (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    return float(np.mean(numerator / denominator))


def ssim(
    img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False
) -> float:
    """Structural similarity (Wang et al. 2004, BasicSR's convention), averaged over channels."""
    a, b = _prepare_pair(img1, img2, crop_border, test_y_channel)
    if min(a.shape[0], a.shape[1]) < _SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping, "
            f"got {a.shape[0]}x{a.shape[1]}"
        )
    window = _gaussian_window()
    values = [
        _ssim_channel(np.ascontiguousarray(a[..., c]), np.ascontiguousarray(b[..., c]), window)
        for c in range(a.shape[2])
    ]
    return float(np.mean(values))


def _luma(image: np.ndarray) -> np.ndarray:
    """Y (RGB input) or grey level of an image, float64 on 0..255, with ``rgb_to_y``'s scaling."""
    if image.ndim == 3 and image.shape[2] == 3:
        return rgb_to_y(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        grey = image.reshape(image.shape[0], image.shape[1]).astype(np.float64)
        if np.issubdtype(image.dtype, np.integer):
            return grey * (_PEAK / np.iinfo(image.dtype).max)
        return grey * _PEAK
    raise ValueError(f"expected an RGB or grey image, got shape {image.shape}")


def mean_gradient_magnitude(image: np.ndarray) -> float:
    """Mean 3x3 Sobel gradient magnitude of the Y channel (0..255 scale): a simple sharpness figure."""
    import cv2

    luma = _luma(np.asarray(image))
    gx = cv2.Sobel(luma, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(luma, cv2.CV_64F, 0, 1, ksize=3)
    return float(np.mean(np.hypot(gx, gy)))
