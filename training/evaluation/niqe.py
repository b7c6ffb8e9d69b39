"""NIQE (Mittal et al. 2013), computed exactly as MATLAB's ``niqe`` / BasicSR's ``calculate_niqe``.

The image's Y channel (BT.601, rounded to integers as BasicSR does) is cropped to whole 96x96
blocks; at two scales (the image and its MATLAB-bicubic half) each block's mean-subtracted,
contrast-normalised coefficients are fitted with generalised Gaussians (the block itself and its
products with four shifted copies), giving 18 features per scale. NIQE is the Mahalanobis-like
distance between the features' multivariate Gaussian and the pristine model's. Lower is better.

Every block is fitted at once with array operations, and the moment-matching search over the
9,801-entry gamma grid is a bisection (BasicSR loops over blocks, rebuilds the table for every
fit and scans all of it), so a 2k image takes a fraction of a second (bench/bench_niqe.py).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from pipelines.api import imresize
from training.errors import TrainingError
from training.metrics import rgb_to_y

BLOCK = 96
"""Side of the square blocks whose statistics NIQE pools, as in MATLAB's default."""

_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
_GAMMAS = np.arange(0.2, 10.001, 0.001)
SHIPPED_PARAMS = "niqe_pris_params.npz"
"""The standard pristine model inside this package (from BasicSR 1.4.2; see data/NOTICE)."""


@dataclass(frozen=True)
class NiqeModel:
    """A pristine NIQE model: mean (36,) and covariance (36, 36) of the features, and the window."""

    mu: np.ndarray
    cov: np.ndarray
    window: np.ndarray


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', size, sigma)``: the window MATLAB's NIQE uses."""
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def load_niqe_model(path: str | os.PathLike[str] | None = None) -> NiqeModel:
    """The pristine model from ``path`` (.npz as BasicSR's, or MATLAB's modelparameters.mat).

    Without a path, the standard parameters shipped in this package.
    """
    if path is None:
        with resources.as_file(
            resources.files("training.evaluation") / "data" / SHIPPED_PARAMS
        ) as shipped:
            return _read_params(Path(shipped))
    return _read_params(Path(path))


def _read_params(path: Path) -> NiqeModel:
    """Read and check a pristine-parameter file; one-line errors for anything else."""
    if not path.is_file():
        raise TrainingError(f"{path}: no such NIQE parameter file")
    try:
        if path.suffix.lower() == ".mat":
            from scipy.io import loadmat

            data = dict(loadmat(str(path)))
        else:
            with np.load(path, allow_pickle=False) as npz:
                data = {key: npz[key] for key in npz.files}
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        raise TrainingError(f"{path}: cannot read NIQE parameters ({exc})") from None
    mu = _first(data, ("mu_pris_param", "mu_prisparam"), path)
    cov = _first(data, ("cov_pris_param", "cov_prisparam"), path)
    window = data.get("gaussian_window")
    mu = np.asarray(mu, dtype=np.float64).reshape(-1)
    cov = np.asarray(cov, dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise TrainingError(
            f"{path}: expected a 36-vector and a 36x36 covariance, got {mu.shape} and {cov.shape}"
        )
    window = gaussian_window() if window is None else np.asarray(window, dtype=np.float64)
    return NiqeModel(mu, cov, window)


def _first(data: dict[str, object], keys: tuple[str, ...], path: Path) -> object:
    for key in keys:
        if key in data:
            return data[key]
    raise TrainingError(f"{path}: no {' or '.join(keys)} array in this NIQE parameter file")


class NiqeUndefined(ValueError):
    """NIQE has no value for this image: too small for its 96x96 blocks, or too flat."""


def niqe_luma(image: np.ndarray) -> np.ndarray:
    """The plane NIQE scores: Y of RGB (alpha dropped; grey as R = G = B), rounded, 0..255."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[..., :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"NIQE needs a grey, RGB or RGBA image, got shape {image.shape}")
    return np.round(rgb_to_y(image))


def niqe(image: np.ndarray, crop_border: int = 0, model: NiqeModel | None = None) -> float:
    """NIQE of an 8/16-bit grey, RGB or RGBA image on its Y channel, ``crop_border`` removed."""
    luma = niqe_luma(image)
    if crop_border:
        luma = luma[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_of_plane(luma, model or load_niqe_model())


def niqe_of_plane(plane: np.ndarray, model: NiqeModel) -> float:
    """NIQE of a 2-D float plane on the 0..255 scale (already cropped and rounded)."""
    rows, cols = plane.shape[0] // BLOCK, plane.shape[1] // BLOCK
    if rows < 1 or cols < 1:
        raise NiqeUndefined(
            f"NIQE needs at least {BLOCK}x{BLOCK} pixels after cropping, got "
            f"{plane.shape[0]}x{plane.shape[1]}"
        )
    img = np.asarray(plane, dtype=np.float64)[: rows * BLOCK, : cols * BLOCK]
    features = []
    for scale in (1, 2):
        normalised = _mscn(img, model.window)
        features.append(_block_features(_blocks(normalised, BLOCK // scale)))
        if scale == 1:
            img = imresize(img / 255.0, scale=0.5) * 255.0
    feats = np.concatenate(features, axis=1)
    return _distance(feats, model)


def _mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted, contrast-normalised coefficients with a replicate border (MATLAB's).

    In float32 as BasicSR computes them: on flat areas float64 leaves residues of 1e-14 whose
    signs would count in the AGGD fits, where float32 gives exact zeros.
    """
    img = img.astype(np.float32)
    mu = _smooth(img, window)
    sigma = np.sqrt(np.abs(_smooth(img * img, window) - mu * mu))
    return ((img - mu) / (sigma + np.float32(1.0))).astype(np.float64)


def _smooth(plane: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``plane`` convolved with ``window`` (replicate border), summed in float64, as float32.

    A separable window (the standard Gaussian) runs as two 1-D passes, 3.5x fewer operations.
    """
    from scipy import ndimage

    rows, cols = _separate(window)
    if rows is None or cols is None:
        return ndimage.convolve(plane, window, mode="nearest", output=np.float64).astype(np.float32)
    once = ndimage.convolve1d(plane, rows, axis=0, mode="nearest", output=np.float64)
    return ndimage.convolve1d(once, cols, axis=1, mode="nearest").astype(np.float32)


def _separate(window: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """1-D factors (column, row) whose outer product is ``window``, or (None, None)."""
    u, s, vt = np.linalg.svd(window)
    rows, cols = u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
    if np.abs(np.outer(rows, cols) - window).max() > 1e-15:
        return None, None
    return rows, cols


def _blocks(plane: np.ndarray, side: int) -> np.ndarray:
    """(N, side, side) non-overlapping blocks of a plane whose sides are multiples of ``side``."""
    rows, cols = plane.shape[0] // side, plane.shape[1] // side
    tiles = plane[: rows * side, : cols * side].reshape(rows, side, cols, side)
    return tiles.transpose(0, 2, 1, 3).reshape(rows * cols, side, side)


def _block_features(blocks: np.ndarray) -> np.ndarray:
    """(N, 18) features per block: AGGD shape and scale, then 4 per shifted product."""
    from scipy import special

    alpha, left, right = _aggd(blocks.reshape(len(blocks), -1))
    columns = [alpha, (left + right) / 2]
    for shift in _SHIFTS:
        product = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, left, right = _aggd(product.reshape(len(blocks), -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (right - left) * (special.gamma(2 / alpha) / special.gamma(1 / alpha))
        columns += [alpha, mean, left, right]
    return np.stack(columns, axis=1)


@functools.cache
def _r_gamma() -> np.ndarray:
    """The generalised-Gaussian ratio Gamma(2/g)^2 / (Gamma(1/g) Gamma(3/g)) on the search grid."""
    from scipy import special

    inv = 1.0 / _GAMMAS
    return special.gamma(2 * inv) ** 2 / (special.gamma(inv) * special.gamma(3 * inv))


def _aggd(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit (shape, left and right scale) of every row at once.

    Moment matching over the same 0.001-step grid as MATLAB; a row without negative or positive
    values gives NaN, as the reference does (such blocks are left out of the covariance).
    """
    from scipy import special

    squares = rows * rows
    negative, positive = rows < 0, rows > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((squares * negative).sum(1) / negative.sum(1))
        right = np.sqrt((squares * positive).sum(1) / positive.sum(1))
        gammahat = left / right
        rhat = np.abs(rows).mean(1) ** 2 / squares.mean(1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    index = nearest_on_grid(_r_gamma(), rhatnorm)
    alpha = _GAMMAS[index]
    ratio = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    return alpha, left * ratio, right * ratio


def nearest_on_grid(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``argmin((grid - v) ** 2)`` for each value, on a strictly increasing grid, by bisection.

    Ties go to the lower index and NaN to index 0, as ``np.argmin`` gives them.
    """
    upper = np.clip(np.searchsorted(grid, values), 1, len(grid) - 1)
    lower = upper - 1
    below = (grid[lower] - values) ** 2
    above = (grid[upper] - values) ** 2
    index = np.where(above < below, upper, lower)
    return np.where(np.isnan(values), 0, index)


def _distance(feats: np.ndarray, model: NiqeModel) -> float:
    """Distance between the image's feature Gaussian and the pristine one (NIQE's score)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: refused just below
        mu = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) < 2:
        raise NiqeUndefined(
            "NIQE: fewer than two 96x96 blocks with usable statistics (a flat or tiny image)"
        )
    cov = np.cov(complete, rowvar=False)
    diff = model.mu - mu
    quality = diff @ np.linalg.pinv((model.cov + cov) / 2) @ diff
    return float(math.sqrt(quality))
