"""Network interpolation (paper Eq. 4) and image interpolation, as pure functions."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import numpy as np
import torch

from esrgan_plugin.errors import InterpolationError
from esrgan_plugin.models.loading import LoadedModel


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in [0, 1], or a clear error."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise InterpolationError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InterpolationError(f"alpha must be in [0, 1], got {alpha}")
    return value


def interpolate_state_dicts(
    psnr: Mapping[str, torch.Tensor], gan: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """theta = (1 - alpha) * theta_PSNR + alpha * theta_GAN over every parameter.

    Both state dicts must come from the same architecture: same keys and shapes.
    """
    alpha = check_alpha(alpha)
    missing = sorted(set(psnr) ^ set(gan))
    if missing:
        raise InterpolationError(
            f"the two models have different parameters ({len(missing)} keys differ, e.g. {missing[0]}); "
            "interpolate two models of the same architecture"
        )
    out: dict[str, torch.Tensor] = {}
    for key, a in psnr.items():
        b = gan[key]
        if a.shape != b.shape:
            raise InterpolationError(
                f"parameter {key} has shape {tuple(a.shape)} in the first model and {tuple(b.shape)} in the second"
            )
        if not (a.is_floating_point() and b.is_floating_point()):
            out[key] = a.clone()
            continue
        out[key] = torch.lerp(a.float(), b.float(), alpha)
    return out


def interpolate_images(psnr: np.ndarray, gan: np.ndarray, alpha: float) -> np.ndarray:
    """Pixel blend ``(1 - alpha) * psnr + alpha * gan`` of two outputs (same shape and dtype)."""
    alpha = check_alpha(alpha)
    if psnr.shape != gan.shape or psnr.dtype != gan.dtype:
        raise InterpolationError(
            f"images differ: {psnr.shape} {psnr.dtype} vs {gan.shape} {gan.dtype}; blend outputs of the same input"
        )
    blended = (1.0 - alpha) * psnr.astype(np.float64) + alpha * gan.astype(np.float64)
    if np.issubdtype(psnr.dtype, np.integer):
        return np.rint(blended).astype(psnr.dtype)
    return blended.astype(psnr.dtype)


def interpolate_models(psnr: LoadedModel, gan: LoadedModel, alpha: float) -> LoadedModel:
    """A new model whose parameters interpolate two loaded models of the same configuration.

    The models may come from files of different key layouts: both are compared and blended in
    the canonical layout.
    """
    alpha = check_alpha(alpha)
    if psnr.architecture != gan.architecture or psnr.config != gan.config:
        raise InterpolationError(
            f"models differ in architecture: {psnr.architecture} {psnr.config} vs {gan.architecture} {gan.config}"
        )
    blended = interpolate_state_dicts(psnr.module.state_dict(), gan.module.state_dict(), alpha)
    module = copy.deepcopy(psnr.module)
    module.load_state_dict(blended)
    metadata = {
        "interpolation_alpha": repr(alpha),
        "interpolated_from": f"{psnr.source} | {gan.source}",
    }
    return LoadedModel(
        module, psnr.layout, psnr.config, metadata, source=f"interpolation(alpha={alpha})"
    )
