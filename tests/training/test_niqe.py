"""NIQE against BasicSR's reference values, the batched fits against one-block fits, parameter files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import params_or_skip
from scipy import ndimage
from scipy.io import savemat

from pipelines.io.images import read_image
from training.errors import TrainingError
from training.evaluation import niqe as niqe_module
from training.evaluation.niqe import gaussian_window, load_niqe_model, niqe

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
VECTORS = SHARED / "reference" / "niqe_vectors.json"
PARAMS = SHARED / "reference" / "niqe_pris_params.npz"
IMAGES = SHARED / "data" / "images"
TOLERANCE = 0.01


def _cases() -> list[str]:
    if not VECTORS.is_file():
        return []
    images = json.loads(VECTORS.read_text())["images"]
    return [f"{name}:{crop}" for name in sorted(images) for crop in (0, 4)]


@pytest.mark.parametrize("case", params_or_skip(_cases(), f"NIQE reference not found at {VECTORS}"))
def test_matches_basicsr(case: str) -> None:
    name, crop = case.rsplit(":", 1)
    expected = json.loads(VECTORS.read_text())["images"][name][f"niqe_y_crop{crop}"]
    got = niqe(read_image(IMAGES / name), crop_border=int(crop))
    assert abs(got - expected) < TOLERANCE, f"{name} crop {crop}: {got} vs BasicSR {expected}"


def test_shipped_parameters_are_the_standard_file() -> None:
    if not PARAMS.is_file():
        pytest.skip(f"reference parameters not found at {PARAMS}")
    shipped = Path(niqe_module.__file__).parent / "data" / "niqe_pris_params.npz"
    assert (
        hashlib.sha256(shipped.read_bytes()).digest()
        == hashlib.sha256(PARAMS.read_bytes()).digest()
    )
    model = load_niqe_model()
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36)
    np.testing.assert_allclose(model.window, gaussian_window(), atol=1e-15)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour texture (NIQE is defined on natural-ish content)."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(h // 4, w // 4, 3))
    big = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    big += 0.3 * rng.normal(size=big.shape)
    return np.clip(128 + 40 * big, 0, 255).astype(np.uint8)


def test_batched_fits_equal_one_block_at_a_time() -> None:
    rng = np.random.default_rng(3)
    blocks = rng.normal(size=(7, 48, 48)) * rng.uniform(0.2, 2.0, size=(7, 1, 1))
    blocks[2] = np.abs(blocks[2])  # no negative values: NaN features, as the reference gives
    together = niqe_module._block_features(blocks)
    alone = np.concatenate([niqe_module._block_features(b[None]) for b in blocks])
    np.testing.assert_array_equal(np.isnan(together), np.isnan(alone))
    np.testing.assert_allclose(together[~np.isnan(together)], alone[~np.isnan(alone)], rtol=1e-12)
    assert np.isnan(together[2]).any() and not np.isnan(together[0]).any()


def test_grey_equals_its_rgb_expansion_and_alpha_is_ignored() -> None:
    grey = _texture(200, 200)[..., 0]
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgba = np.concatenate([rgb, np.zeros_like(grey)[..., None]], axis=2)
    assert niqe(grey) == niqe(rgb) == niqe(rgba)


def test_sixteen_bit_scores_like_eight_bit() -> None:
    image = _texture(200, 200)
    assert abs(niqe(image.astype(np.uint16) * 257) - niqe(image)) < 1e-9


def test_blurred_photo_scores_worse(shared_images: Path) -> None:
    import cv2

    photo = read_image(shared_images / "set14_comic_hr.png")
    assert niqe(cv2.GaussianBlur(photo, (0, 0), 1.5)) > niqe(photo) + 1.0


def test_too_small_image_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 96x96"):
        niqe(_texture(100, 100), crop_border=4)


def test_matlab_parameter_file(tmp_path: Path) -> None:
    shipped = load_niqe_model()
    path = tmp_path / "modelparameters.mat"
    savemat(str(path), {"mu_prisparam": shipped.mu[None], "cov_prisparam": shipped.cov})
    loaded = load_niqe_model(path)
    np.testing.assert_array_equal(loaded.mu, shipped.mu)
    np.testing.assert_allclose(loaded.window, shipped.window, atol=1e-15)
    image = _texture(192, 192)
    assert niqe(image, model=loaded) == pytest.approx(niqe(image), rel=1e-12)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such NIQE parameter file"),
        (b"not an npz", "cannot read NIQE parameters"),
        ({"mu_pris_param": np.zeros(5), "cov_pris_param": np.eye(5)}, "expected a 36-vector"),
        ({"something": np.zeros(3)}, "no mu_pris_param or mu_prisparam"),
    ],
)
def test_bad_parameter_files(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "params.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        np.savez(path, **content)
    with pytest.raises(TrainingError, match=message) as info:
        load_niqe_model(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_grid_search_equals_brute_force_argmin() -> None:
    grid = niqe_module._r_gamma()
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.uniform(0.0, 1.0, 5000),
            grid[[0, 1, 500, -2, -1]],  # exactly on the grid
            (grid[[10, 20]] + grid[[11, 21]]) / 2,  # half-way: ties
            [-1.0, 5.0, np.nan],  # outside the grid, and NaN
        ]
    )
    brute = np.array([np.argmin((grid - v) ** 2) for v in values])
    np.testing.assert_array_equal(niqe_module.nearest_on_grid(grid, values), brute)


def test_separable_smoothing_equals_the_2d_window() -> None:
    rng = np.random.default_rng(1)
    plane = np.round(rng.uniform(0, 255, (50, 61))).astype(np.float32)
    window = gaussian_window()
    rows, cols = niqe_module._separate(window)
    assert rows is not None and cols is not None
    separable = niqe_module._smooth(plane, window)
    full = ndimage.convolve(plane.astype(np.float64), window, mode="nearest")
    np.testing.assert_allclose(separable, full, rtol=1e-6)
    flat = np.full((20, 20), 77.0, dtype=np.float32)
    np.testing.assert_array_equal(niqe_module._smooth(flat, window), flat)  # exact, no residue
    skewed = window.copy()
    skewed[0, 1] += 1e-3  # not separable: the 2-D path
    assert niqe_module._separate(skewed) == (None, None)
    np.testing.assert_allclose(
        niqe_module._smooth(plane, skewed),
        ndimage.convolve(plane.astype(np.float64), skewed, mode="nearest"),
        rtol=1e-6,
    )
