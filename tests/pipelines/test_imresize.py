"""MATLAB-compatible bicubic imresize: reference vectors, integer round trips, argument errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import params_or_skip

from pipelines.imresize import imresize

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
VECTORS = SHARED / "reference" / "imresize_vectors.npz"
TOLERANCE = 1e-6


def _vector_keys() -> list[str]:
    """Names of every expected-output array in the reference file (empty if it is absent)."""
    if not VECTORS.is_file():
        return []
    with np.load(VECTORS) as data:
        return sorted(key for key in data.files if "__scale_" in key)


def _scale_from_key(key: str) -> float:
    """The scale factor a key such as ``ramp__scale_0.333333`` stands for (0.333333 means 1/3)."""
    text = key.rsplit("__scale_", 1)[1]
    return 1.0 / 3.0 if text.startswith("0.333") else float(text)


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    if not VECTORS.is_file():
        pytest.skip(
            f"imresize reference vectors not found at {VECTORS} (shared/ sits beside the repo)"
        )
    with np.load(VECTORS) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize(
    "key", params_or_skip(_vector_keys(), f"imresize reference vectors not found at {VECTORS}")
)
def test_matches_reference(vectors: dict[str, np.ndarray], key: str) -> None:
    source = vectors[key.rsplit("__scale_", 1)[0] + "__input"]
    expected = vectors[key].astype(np.float64)
    result = imresize(source, scale=_scale_from_key(key))
    assert result.dtype == np.float64
    assert result.shape == expected.shape
    assert np.max(np.abs(result - expected)) <= TOLERANCE


def test_reference_file_has_all_scales(vectors: dict[str, np.ndarray]) -> None:
    inputs = [key for key in vectors if key.endswith("__input")]
    assert inputs
    assert len(vectors) == len(inputs) * 6


@pytest.mark.parametrize("shape", [(17, 13), (17, 13, 3)])
@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 2.0, 4.0])
def test_output_size_is_ceil(shape: tuple[int, ...], scale: float) -> None:
    result = imresize(np.random.rand(*shape), scale=scale)
    assert result.shape[:2] == (int(np.ceil(17 * scale)), int(np.ceil(13 * scale)))
    assert result.shape[2:] == shape[2:]


def test_scale_one_is_identity() -> None:
    image = np.random.rand(9, 7, 2)
    np.testing.assert_allclose(imresize(image, scale=1.0), image, atol=1e-12)


def test_constant_image_stays_constant() -> None:
    image = np.full((10, 14, 3), 0.3)
    for scale in (0.25, 0.5, 3.0):
        np.testing.assert_allclose(imresize(image, scale=scale), 0.3, atol=1e-12)


def test_output_shape_matches_equivalent_scale() -> None:
    image = np.random.rand(24, 20, 3)
    np.testing.assert_allclose(imresize(image, output_shape=(12, 10)), imresize(image, scale=0.5))


def test_output_shape_anisotropic() -> None:
    image = np.random.rand(24, 20)
    result = imresize(image, output_shape=(6, 40))
    assert result.shape == (6, 40)
    rows_then_cols = imresize(imresize(image, output_shape=(6, 20)), output_shape=(6, 40))
    np.testing.assert_allclose(result, rows_then_cols, atol=1e-12)


def test_channels_are_independent() -> None:
    image = np.random.rand(11, 9, 3)
    stacked = np.stack([imresize(image[..., c], scale=0.5) for c in range(3)], axis=-1)
    np.testing.assert_allclose(imresize(image, scale=0.5), stacked, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_round_trip(dtype: type[np.integer]) -> None:
    peak = np.iinfo(dtype).max
    image = np.random.randint(0, peak + 1, size=(16, 12, 3)).astype(dtype)
    result = imresize(image, scale=0.5)
    assert result.dtype == dtype
    assert result.shape == (8, 6, 3)
    expected = np.clip(
        np.round(imresize(image.astype(np.float64) / peak, scale=0.5) * peak), 0, peak
    )
    np.testing.assert_array_equal(result, expected.astype(dtype))
    back = imresize(result, scale=2.0)
    assert back.dtype == dtype
    assert back.shape == image.shape


def test_uint8_scale_one_is_lossless() -> None:
    image = np.random.randint(0, 256, size=(7, 5), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(image, scale=1.0), image)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"scale": 0.5, "output_shape": (4, 4)}, "exactly one"),
        ({"scale": 0.0}, "positive"),
        ({"scale": -2.0}, "positive"),
        ({"scale": float("nan")}, "positive"),
        ({"output_shape": (0, 4)}, "output_shape"),
        ({"output_shape": (4,)}, "output_shape"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        imresize(np.zeros((8, 8)), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(0, 5), (5, 0, 3), (5,), (2, 2, 2, 2)])
def test_bad_images(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="imresize"):
        imresize(np.zeros(shape), scale=2.0)


def test_unsupported_dtype() -> None:
    with pytest.raises(ValueError, match="dtype"):
        imresize(np.zeros((4, 4), dtype=np.int32), scale=2.0)
