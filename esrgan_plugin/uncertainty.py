"""Uncertainty maps: where an upscaled image is unsure, per output pixel, and how it is written.

The map's value at a pixel is, in [0, 1] intensity units:

* the **spread** of the x8 self-ensemble (:mod:`esrgan_plugin.ensemble`): the standard deviation
  of the eight flipped and rotated passes, averaged over colour channels. A network that is sure
  of a pixel gives it the same value whichever way the image is turned; and
* with a **reference** (a PSNR-oriented model paired with a GAN model), the two combined as
  ``sqrt(spread**2 + disagreement**2)``, where the disagreement is the absolute difference of
  the GAN output and the reference's output, averaged over colour channels: the PSNR model
  predicts the mean of the plausible images, so where the GAN departs from it the detail is
  invented.

Written as an image, a map value is ``min(1, gain * uncertainty)`` in the image's range: in a
16-bit grey PNG ``value / 65535 = min(1, gain * uncertainty)``; the default gain
(:data:`~esrgan_plugin.options.UNCERTAINTY_GAIN`, 5) puts an uncertainty of 0.2 (51/255) at
white: on Set14 that is above the 99th percentile of every model measured (RealESRGAN_x4plus's
is 0.12-0.14), so maps rarely saturate. :func:`read_map` undoes it. docs/evaluation.md ("Uncertainty maps") shows how well the maps rank
with the real error on Set14.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import DTypeLike

from esrgan_plugin.errors import InferenceError
from esrgan_plugin.options import UNCERTAINTY_GAIN, UncertaintyParams
from esrgan_plugin.pixels import from_float, to_float

if TYPE_CHECKING:
    from esrgan_plugin.inference import Upscaler
    from esrgan_plugin.tiles.grid import Progress

MAP_DEFINITION = (
    "value / max = min(1, gain * u), u in [0, 1] intensity units: the standard deviation over "
    "the x8 self-ensemble, averaged over colour channels; with a reference model, "
    "sqrt(std^2 + mean |output - reference|^2)"
)
"""The map's scale in one line, for provenance and file metadata."""


def disagreement(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean absolute difference over colour channels (alpha left out) of two images of one size,
    in [0, 1] units: an (H, W) float32 array."""
    a, b = to_float(np.asarray(output)), to_float(np.asarray(reference))
    if a.shape != b.shape:
        raise InferenceError(
            f"the reference model's output is {b.shape[:2]}, the model's {a.shape[:2]}: "
            "a reference must have the same scale (and outscale)"
        )
    if a.ndim == 2:
        return np.abs(a - b)
    colour = slice(0, 3) if a.shape[2] == 4 else slice(None)
    return np.abs(a[..., colour] - b[..., colour]).mean(axis=2, dtype=np.float32)


def combine(spread: np.ndarray, difference: np.ndarray | None = None) -> np.ndarray:
    """The uncertainty: the spread alone, or ``sqrt(spread**2 + difference**2)``."""
    if difference is None:
        return spread.astype(np.float32, copy=False)
    return np.sqrt(np.square(spread) + np.square(difference)).astype(np.float32)


def upscale_with_uncertainty(
    upscaler: Upscaler,
    image: np.ndarray,
    reference: Upscaler | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``upscaler``'s output for ``image`` and its uncertainty, an (H', W') float32 array in
    [0, 1] units the size of the output (see the module's docstring); ``reference`` adds the
    disagreement with a paired PSNR-oriented model (run plainly, or with ``tta`` if it has it)."""
    out, spread = upscaler.upscale_with_uncertainty(image, progress)
    if reference is None:
        return out, combine(spread)
    return out, combine(spread, disagreement(out, reference.upscale(image)))


def map_image(
    uncertainty: np.ndarray, gain: float = UNCERTAINTY_GAIN, dtype: DTypeLike = np.uint16
) -> np.ndarray:
    """The map as a grey image: ``min(1, gain * uncertainty)`` in ``dtype``'s range (uint8,
    uint16, or float32 in [0, 1])."""
    if gain <= 0:
        raise InferenceError(f"uncertainty gain {gain}: must be above 0")
    return from_float(np.clip(uncertainty * gain, 0.0, 1.0).astype(np.float32), np.dtype(dtype))


def read_map(image: np.ndarray, gain: float = UNCERTAINTY_GAIN) -> np.ndarray:
    """The uncertainty a map image holds (values at 1 are at least ``1 / gain``)."""
    return (to_float(np.asarray(image)) / gain).astype(np.float32)


def stage(image: np.ndarray, params: UncertaintyParams) -> np.ndarray:
    """``esrgan.uncertainty``: the map of ``esrgan.upscale``'s output with the same parameters,
    as an image of the input's dtype and channel count (a transform keeps both): every colour
    channel holds the map, alpha is opaque; images of other channel counts (2, 5, ...: not
    colours) get each channel's own map."""
    from esrgan_plugin.engines.upscalers import device_lock, upscaler_for

    upscaler = upscaler_for(params)
    reference_params = params.reference_params()
    reference = upscaler_for(reference_params) if reference_params is not None else None
    image = np.asarray(image)
    with device_lock(str(upscaler.device)):
        if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
            planes = [
                upscale_with_uncertainty(upscaler, image[..., c], reference)[1]
                for c in range(image.shape[2])
            ]
            return map_image(np.stack(planes, axis=-1), params.uncertainty_gain, image.dtype)
        uncertainty = upscale_with_uncertainty(upscaler, image, reference)[1]
    grey = map_image(uncertainty, params.uncertainty_gain, image.dtype)
    if image.ndim == 2:
        return grey
    if image.shape[2] == 1:
        return grey[..., None]
    opaque = np.iinfo(image.dtype).max if image.dtype.kind == "u" else 1.0
    alpha = [np.full_like(grey, opaque)] if image.shape[2] == 4 else []
    return np.stack([grey, grey, grey, *alpha], axis=-1)
