"""Images through a network, tile by tile, without PyTorch: what :class:`~esrgan_plugin.inference.Upscaler` and the command's fast start share.

Handles what the network itself does not: bit depth (8/16-bit and float), grey and alpha
channels, whole-image or tiled execution (default tile from the model's measured halo, measured
costs and total memory: :mod:`esrgan_plugin.tiles.defaults`), halving the tile when the device
runs out of memory, and a final resize for an ``outscale`` that differs from the network's own
scale. A subclass supplies the network and how pixels become its batches: torch tensors
(:class:`~esrgan_plugin.inference.Upscaler`) or NumPy arrays
(:class:`~esrgan_plugin.cli.fast_start.FastUpscaler`), with the same tiles and the same output.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from esrgan_plugin.arch.needs import ModelNeeds
from esrgan_plugin.device import DeviceLike, free_memory_bytes
from esrgan_plugin.errors import InferenceError
from esrgan_plugin.options import MIN_TILE, UpscaleOptions
from esrgan_plugin.pixels import from_float, to_float
from esrgan_plugin.tiles.defaults import (
    FLAT,
    TAIL_RESERVE_BYTES,
    TILE_SIDES,
    activation_bytes_per_pixel,
    choose_tile,
    cost_curve,
    memory_budget_pixels,
)
from esrgan_plugin.tiles.grid import Progress, round_up, run_tiled

log = logging.getLogger(__name__)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601, as cv2's RGB2GRAY

Forward = Callable[[Any], Any]
"""An NCHW batch (tensor or array) in, the upscaled batch out."""


class TiledUpscaler:
    """A network with its needs, options, device and precision: images in, upscaled images out.

    Subclasses set the attributes in ``__init__`` and implement :meth:`_forward`,
    :meth:`_to_batch`, :meth:`_to_pixels` and :attr:`halo`.
    """

    options: UpscaleOptions
    needs: ModelNeeds
    device: DeviceLike
    precision: str
    architecture_name: str
    batch_size: int

    @property
    def scale(self) -> int:
        return self.needs.scale

    @property
    def in_channels(self) -> int:
        return self.needs.in_channels

    @property
    def out_channels(self) -> int:
        return self.needs.out_channels

    @property
    def multiple(self) -> int:
        return self.needs.multiple_of

    @property
    def num_features(self) -> int:
        return self.needs.feature_channels

    @property
    def halo(self) -> int:
        """The halo tiles get (the option, else the one the model needs)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ what a subclass runs

    def _forward(self, batch: Any) -> Any:
        raise NotImplementedError

    def _to_batch(self, pixels: np.ndarray) -> Any:
        """(H, W, C) float32 -> the (1, C, H, W) batch the network takes."""
        raise NotImplementedError

    def _to_pixels(self, out: Any) -> np.ndarray:
        """The (1, C, sH, sW) output -> (sH, sW, C) float32 in [0, 1], C-contiguous."""
        raise NotImplementedError

    def _is_out_of_memory(self, exc: BaseException) -> bool:
        return isinstance(exc, MemoryError)

    def _release_cache(self) -> None:
        """Give freed device memory back before a retry with smaller tiles."""

    # ------------------------------------------------------------------ public API

    def upscale(self, image: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Upscale an (H, W) or (H, W, C) image (C = 1, 3 or 4); same dtype and channels out."""
        return self._upscale_image(image, progress, None)

    def run_network(self, x: Any, forward: Forward, progress: Progress | None = None) -> Any:
        """``forward`` over the (1, C, H, W) batch ``x``, whole or in tiles (the default tile,
        halved while the device runs out of memory); the output on the CPU."""
        height, width = x.shape[-2:]
        tile = self._initial_tile(height, width)
        while True:
            try:
                if tile == 0:
                    out = forward(x)
                    if progress is not None:
                        progress(1, 1)
                    return out
                return run_tiled(
                    forward,
                    x,
                    self.scale,
                    tile,
                    self.halo,
                    self.multiple,
                    self.batch_size,
                    self.device,  # type: ignore[arg-type]
                    progress,
                )
            except (RuntimeError, MemoryError) as exc:
                if not self._is_out_of_memory(exc):
                    raise
                self._release_cache()
                smaller = round_up((max(height, width) if tile == 0 else tile) // 2, self.multiple)
                if smaller < MIN_TILE:
                    raise InferenceError(
                        f"out of memory on {self.device} even with {MIN_TILE}-pixel tiles"
                    ) from None
                log.warning(
                    "out of memory on %s with tile %s; retrying with tile %d",
                    self.device,
                    tile or "whole",
                    smaller,
                )
                tile = smaller

    def bytes_per_pixel(self) -> int:
        """Estimated peak activation memory per LR input pixel at this precision (measured)."""
        return int(
            activation_bytes_per_pixel(self.num_features, self.scale, self.multiple, self.precision)
        )

    # ------------------------------------------------------------------ internals

    def _upscale_image(
        self, image: np.ndarray, progress: Progress | None, spreads: list[np.ndarray] | None
    ) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise InferenceError(
                f"expected an (H, W) or (H, W, C) image with C in 1, 3, 4; got shape {image.shape}"
            )
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise InferenceError(f"empty image of shape {image.shape}")
        dtype = image.dtype
        pixels = to_float(image)
        squeeze = pixels.ndim == 2
        if squeeze:
            pixels = pixels[..., None]
        result = self._upscale_channels(pixels, progress, spreads)
        result = self._apply_outscale(result, image.shape[:2])
        if squeeze:
            result = result[..., 0]
        return from_float(result, dtype)

    def _run(
        self, pixels: np.ndarray, progress: Progress | None, spreads: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """(H, W, C) float32 with C = model input channels -> (sH, sW, out channels)."""
        if spreads is not None:
            raise InferenceError("this upscaler has no self-ensemble to measure a spread with")
        return self._to_pixels(self.run_network(self._to_batch(pixels), self._forward, progress))

    def _initial_tile(self, height: int, width: int) -> int:
        if self.options.tile is not None:
            if self.options.tile and self.needs.tiling_discouraged:
                note_tiles_discouraged(self.architecture_name, self.options.tile, asked=True)
            return self.options.tile
        bytes_per_pixel = self.bytes_per_pixel()
        budget = memory_budget_pixels(self.device, bytes_per_pixel)
        curve = cost_curve(self.device, self.precision)
        fits = height * width <= budget
        whole = fits and (curve == FLAT or self.needs.tiling_discouraged)
        if height * width <= TILE_SIDES[0] ** 2 or whole:
            tile = 0  # no grid can beat the whole image: the halo is not even needed
        else:
            tile = choose_tile(height, width, self.halo, self.multiple, budget, curve)
        tile = self._fit_free_memory(height, width, tile, bytes_per_pixel)
        if tile and self.needs.tiling_discouraged:
            note_tiles_discouraged(self.architecture_name, tile, asked=False)
        return tile

    def _fit_free_memory(self, height: int, width: int, tile: int, bytes_per_pixel: int) -> int:
        """``tile``, or a smaller one when free memory is short (the only run-dependent choice)."""
        free = free_memory_bytes(self.device)
        span = max(height, width) if tile == 0 else tile + 2 * self.halo
        pixels = min(span, height) * min(span, width)
        if pixels * bytes_per_pixel + TAIL_RESERVE_BYTES <= free:
            return tile
        usable = max(0, free - TAIL_RESERVE_BYTES) // bytes_per_pixel
        fitting = choose_tile(height, width, self.halo, self.multiple, usable)
        log.warning(
            "free memory (%.1f GiB) is short of the default tile's estimated %.1f GiB; using tile "
            "%d, whose output may differ from the default's by up to the halo's error bound",
            free / 2**30,
            pixels * bytes_per_pixel / 2**30,
            fitting,
        )
        return fitting

    def _upscale_channels(
        self, pixels: np.ndarray, progress: Progress | None, spreads: list[np.ndarray] | None = None
    ) -> np.ndarray:
        channels = pixels.shape[2]
        if channels == self.in_channels:
            return self._run(pixels, progress, spreads)
        alpha = pixels[..., 3:] if channels == 4 else None
        colour = pixels[..., :3] if channels >= 3 else pixels
        if self.in_channels == 3:
            if colour.shape[2] == 1:
                rgb = self._run(np.repeat(colour, 3, axis=2), progress, spreads)
                colour_out = (rgb @ _LUMA)[..., None]
            else:
                colour_out = self._run(colour, progress, spreads)
        elif self.in_channels == 1:
            colour_out = np.concatenate(
                [
                    self._run(colour[..., i : i + 1], progress, spreads)
                    for i in range(colour.shape[2])
                ],
                2,
            )
        else:
            raise InferenceError(
                f"the model takes {self.in_channels} channels and cannot process a {channels}-channel image"
            )
        if alpha is None:
            return colour_out
        return np.concatenate([colour_out, self._upscale_alpha(alpha, progress)], axis=2)

    def _upscale_alpha(self, alpha: np.ndarray, progress: Progress | None) -> np.ndarray:
        height, width = alpha.shape[:2]
        if self.options.alpha_mode == "bicubic":  # exact on uniform alpha, the same in every tile
            import cv2

            resized = cv2.resize(
                alpha[..., 0],
                (width * self.scale, height * self.scale),
                interpolation=cv2.INTER_CUBIC,
            )
            return np.clip(resized, 0.0, 1.0)[..., None]
        if self.in_channels == 1:
            return self._run(alpha, progress)
        rgb = self._run(np.repeat(alpha, self.in_channels, axis=2), progress)
        return (rgb[..., :3] @ _LUMA)[..., None]

    def _apply_outscale(self, result: np.ndarray, input_hw: tuple[int, ...]) -> np.ndarray:
        outscale = self.options.outscale
        if outscale is None or outscale == self.scale:
            return result
        import cv2

        height = max(1, round(input_hw[0] * outscale))
        width = max(1, round(input_hw[1] * outscale))
        shrinking = outscale < self.scale
        resized = cv2.resize(
            result,
            (width, height),
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4,
        )
        if resized.ndim == 2:
            resized = resized[..., None]
        return np.clip(resized, 0.0, 1.0)


@functools.cache
def note_tiles_discouraged(architecture: str, tile: int, asked: bool) -> None:
    """One note per process and tile: tiling an architecture that advises against it."""
    why = "as asked" if asked else "because the image does not fit in memory whole"
    log.warning(
        "note: %s advises against tiles (its attention spans the image; seams may show); "
        "running in %d-pixel tiles %s",
        architecture,
        tile,
        why,
    )
