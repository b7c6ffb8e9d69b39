"""PSNR / SSIM / Y-channel metrics against BasicSR's reference values, plus edge cases."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers import params_or_skip

from training.metrics import mean_gradient_magnitude, psnr, rgb_to_y, ssim

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE = SHARED / "reference" / "metrics_vectors.json"
IMAGES = SHARED / "data" / "images"

METRICS = {
    "psnr_y_crop4": (psnr, {"crop_border": 4, "test_y_channel": True}, 1e-3),
    "ssim_y_crop4": (ssim, {"crop_border": 4, "test_y_channel": True}, 1e-4),
    "psnr_rgb_crop0": (psnr, {"crop_border": 0, "test_y_channel": False}, 1e-3),
    "ssim_rgb_crop0": (ssim, {"crop_border": 0, "test_y_channel": False}, 1e-4),
}


def _read_rgb(path: Path) -> np.ndarray:
    """An 8-bit image file as an RGB array."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"could not read {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _pair_names() -> list[str]:
    """Keys of the reference pairs (empty if the reference file is absent)."""
    if not REFERENCE.is_file():
        return []
    return sorted(json.loads(REFERENCE.read_text())["pairs"])


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    if not REFERENCE.is_file():
        pytest.skip(
            f"metric reference values not found at {REFERENCE} (shared/ sits beside the repo)"
        )
    return json.loads(REFERENCE.read_text())["pairs"]


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize(
    "pair", params_or_skip(_pair_names(), f"metric reference values not found at {REFERENCE}")
)
def test_matches_basicsr(reference: dict[str, Any], pair: str, metric: str) -> None:
    entry = reference[pair]
    test = _read_rgb(IMAGES / entry["test"])
    hr = _read_rgb(IMAGES / entry["hr"])[: test.shape[0], : test.shape[1]]
    function, kwargs, tolerance = METRICS[metric]
    assert abs(function(hr, test, **kwargs) - entry[metric]) <= tolerance


def test_rgb_to_y_range() -> None:
    black = np.zeros((1, 1, 3), dtype=np.uint8)
    white = np.full((1, 1, 3), 255, dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(black), 16.0)
    np.testing.assert_allclose(rgb_to_y(white), 235.0)
    np.testing.assert_allclose(rgb_to_y(np.ones((1, 1, 3))), 235.0)
    assert rgb_to_y(white).dtype == np.float64


def test_rgb_to_y_weights() -> None:
    pure = np.eye(3, dtype=np.float64).reshape(1, 3, 3)
    np.testing.assert_allclose(rgb_to_y(pure)[0], [16 + 65.481, 16 + 128.553, 16 + 24.966])


def test_rgb_to_y_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="RGB"):
        rgb_to_y(np.zeros((4, 4), dtype=np.uint8))


def test_identical_images() -> None:
    image = np.random.randint(0, 256, size=(32, 24, 3), dtype=np.uint8)
    assert psnr(image, image) == math.inf
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim(image, image, crop_border=4, test_y_channel=True) == pytest.approx(1.0)


def test_psnr_known_value() -> None:
    a = np.zeros((16, 16), dtype=np.uint8)
    b = np.full((16, 16), 10, dtype=np.uint8)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))


def test_grey_images_and_y_flag() -> None:
    a = np.random.randint(0, 256, size=(20, 20), dtype=np.uint8)
    b = np.clip(a.astype(int) + np.random.randint(-5, 6, size=a.shape), 0, 255).astype(np.uint8)
    assert psnr(a, b, test_y_channel=True) == psnr(a, b)
    assert ssim(a, b, test_y_channel=True) == ssim(a, b)
    assert 0.0 < ssim(a, b) < 1.0


def test_rgb_ssim_is_channel_mean() -> None:
    a = np.random.randint(0, 256, size=(24, 24, 3), dtype=np.uint8)
    b = np.random.randint(0, 256, size=(24, 24, 3), dtype=np.uint8)
    per_channel = [ssim(a[..., c], b[..., c]) for c in range(3)]
    assert ssim(a, b) == pytest.approx(np.mean(per_channel))


def test_shape_mismatch_names_both_shapes() -> None:
    a = np.zeros((16, 16, 3), dtype=np.uint8)
    b = np.zeros((16, 12, 3), dtype=np.uint8)
    for function in (psnr, ssim):
        with pytest.raises(ValueError, match=r"\(16, 16, 3\).*\(16, 12, 3\)"):
            function(a, b)


@pytest.mark.parametrize("crop_border", [-1, 1.5, 8])
def test_bad_crop_border(crop_border: float) -> None:
    image = np.zeros((16, 16), dtype=np.uint8)
    with pytest.raises(ValueError, match="crop_border"):
        psnr(image, image, crop_border=crop_border)  # type: ignore[arg-type]


def test_ssim_too_small() -> None:
    image = np.zeros((12, 12), dtype=np.uint8)
    with pytest.raises(ValueError, match="11x11"):
        ssim(image, image, crop_border=1)


def test_non_uint8_rejected() -> None:
    image = np.zeros((16, 16), dtype=np.float64)
    with pytest.raises(TypeError, match="uint8"):
        psnr(image, image)


def test_mean_gradient_magnitude() -> None:
    flat = np.full((16, 16, 3), 128, dtype=np.uint8)
    assert mean_gradient_magnitude(flat) == 0.0
    sharp = np.random.randint(0, 256, size=(32, 32, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    assert mean_gradient_magnitude(sharp) > mean_gradient_magnitude(blurred) > 0.0
    grey = sharp[..., 0]
    assert mean_gradient_magnitude(grey) == pytest.approx(mean_gradient_magnitude(grey / 255.0))
