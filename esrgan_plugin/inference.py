"""The upscaler: NumPy images in, upscaled NumPy images out, on any device and engine.

Handles what the network itself does not: bit depth (8/16-bit and float), grey and alpha
channels, whole-image or tiled execution (default tile from the model's measured halo,
measured costs and total memory: :mod:`esrgan_plugin.tiles.defaults`), halving the tile when
the device runs out of memory, and a final resize for an ``outscale`` that differs from the
network's own scale. Which engine runs the network is chosen once, from the engine table
(:mod:`esrgan_plugin.engines.registry`); ``precision: auto`` is chosen by measurement
(:mod:`esrgan_plugin.engines.precision`). ``tta`` runs each tile through the x8 self-ensemble
(:mod:`esrgan_plugin.ensemble`), whose spread is also the uncertainty map
(:meth:`Upscaler.upscale_with_uncertainty`).
"""

from __future__ import annotations

import copy
import functools
import logging

import numpy as np
import torch
from torch import nn

from esrgan_plugin.arch.padding import padded_network
from esrgan_plugin.arch.registry import architecture_of
from esrgan_plugin.device import (
    free_memory_bytes,
    is_out_of_memory,
    resolve_device,
    resolve_precision,
)
from esrgan_plugin.engines.base import EngineRequest
from esrgan_plugin.engines.precision import PrecisionChoice, choose_precision
from esrgan_plugin.engines.registry import choose_engine
from esrgan_plugin.ensemble import SelfEnsemble
from esrgan_plugin.errors import InferenceError
from esrgan_plugin.models.loaded import LoadedModel
from esrgan_plugin.options import MIN_TILE, UpscaleOptions
from esrgan_plugin.pixels import from_float, to_float
from esrgan_plugin.runtime import reuse_freed_memory
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
from esrgan_plugin.tiles.halo import model_halo

log = logging.getLogger(__name__)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601, as cv2's RGB2GRAY


def _frozen_copy(model: LoadedModel | nn.Module, module: nn.Module, engine: str) -> nn.Module:
    """The module this upscaler keeps, in eval mode without gradients and safe from the caller.

    A loaded model's module already is, and the engines other than ``pytorch`` (which moves the
    module to its device in place) only read it: those share it instead of copying the weights
    (0.4 s for RealESRGAN_x4plus, on every process's first image).
    """
    frozen = not module.training and not any(p.requires_grad for p in module.parameters())
    if isinstance(model, LoadedModel) and frozen and engine != "pytorch":
        return module
    return copy.deepcopy(module).eval().requires_grad_(False)


class Upscaler:
    """A model placed on a device with a precision; immutable once built, safe to reuse."""

    def __init__(
        self, model: LoadedModel | nn.Module, options: UpscaleOptions | None = None
    ) -> None:
        self.options = options = (options or UpscaleOptions()).options()
        module = model.module if isinstance(model, LoadedModel) else model
        self.arch = model.descriptor if isinstance(model, LoadedModel) else architecture_of(module)
        self.needs = needs = self.arch.needs(module.config)
        self.scale = needs.scale
        self.in_channels = needs.in_channels
        self.out_channels = needs.out_channels
        self.multiple = needs.multiple_of
        self.num_features = needs.feature_channels
        self.device = resolve_device(options.device)
        self.precision_choice: PrecisionChoice | None = None
        """``auto``'s measured choice (its record belongs in provenance); None otherwise."""
        if options.precision == "auto":
            self.precision_choice = choose_precision(module, self.arch, self.device, options)
        self.precision = (
            self.precision_choice.precision
            if self.precision_choice is not None
            else resolve_precision(options.precision, self.device, self.arch.precisions)
        )
        parameters = sum(p.numel() for p in module.parameters())
        self.engine = choose_engine(
            options.engine, self.arch, self.device, self.precision, parameters
        )
        self.module = _frozen_copy(model, module, self.engine.name)
        request = EngineRequest(
            self.module,
            self.arch,
            self.device,
            self.precision,
            options.calibration,
            options.channels_last,
        )
        # every engine then sees sizes the network accepts (minimum, multiple, square)
        self._network = padded_network(self.engine.prepare(request), needs)
        self.ensemble = SelfEnsemble(self._network, self.multiple)
        if self.device.type == "cpu":
            reuse_freed_memory()  # large activations stay mapped across tiles and calls
        self.batch_size = options.batch_size or (1 if self.device.type == "cpu" else 4)
        self._halo: int | None = None

    # ------------------------------------------------------------------ public API

    def upscale(self, image: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Upscale an (H, W) or (H, W, C) image (C = 1, 3 or 4); same dtype and channels out."""
        return self._upscale_image(image, progress, None)

    def upscale_with_uncertainty(
        self, image: np.ndarray, progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`upscale`'s output and the spread of the x8 self-ensemble behind it.

        The spread is, per output pixel, the standard deviation over the eight passes in [0, 1]
        units, averaged over colour channels (alpha left out): an (H', W') float32 array the size
        of the output. The output is the ensemble's average with ``tta``, else the plain pass
        (both cost the eight passes). :mod:`esrgan_plugin.uncertainty` turns it into a map image.
        """
        spreads: list[np.ndarray] = []
        result = self._upscale_image(image, progress, spreads)
        spread = np.stack(spreads).mean(axis=0, dtype=np.float32)[..., None]
        return result, self._apply_outscale(spread, np.shape(image)[:2])[..., 0]

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

    def upscale_tensor(
        self, x: torch.Tensor, progress: Progress | None = None, spread: bool = False
    ) -> torch.Tensor:
        """Run the network on an NCHW float tensor in [0, 1] (N = 1); returns float32 on the CPU.
        With ``spread``, one more channel: the self-ensemble's spread (see ``upscale_with_uncertainty``)."""
        forward = self._forward_spread if spread else self._forward
        height, width = x.shape[-2:]
        tile = self._initial_tile(height, width)
        while True:
            try:
                if tile == 0:
                    out = forward(x).float().cpu()
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
                    self.device,
                    progress,
                )
            except (RuntimeError, MemoryError) as exc:
                if not is_out_of_memory(exc) and not isinstance(exc, MemoryError):
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

    # ------------------------------------------------------------------ internals

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = self._on_device(batch)
        return self.ensemble(batch) if self.options.tta else self._network(batch)

    def _forward_spread(self, batch: torch.Tensor) -> torch.Tensor:
        return self.ensemble.with_spread(self._on_device(batch), average=self.options.tta)

    def _on_device(self, batch: torch.Tensor) -> torch.Tensor:
        memory_format = (
            torch.channels_last if self.options.channels_last else torch.contiguous_format
        )
        return batch.to(self.device, torch.float32).contiguous(memory_format=memory_format)

    @property
    def halo(self) -> int:
        """The halo in use: the option, else the one this model needs (measured once, cached)."""
        if self.options.halo is not None:
            return self.options.halo
        if self._halo is None:
            self._halo = model_halo(self.module, device=self.device).halo
        return self._halo

    def _initial_tile(self, height: int, width: int) -> int:
        if self.options.tile is not None:
            if self.options.tile and self.needs.tiling_discouraged:
                note_tiles_discouraged(self.arch.name, self.options.tile, asked=True)
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
            note_tiles_discouraged(self.arch.name, tile, asked=False)
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

    def bytes_per_pixel(self) -> int:
        """Estimated peak activation memory per LR input pixel at this precision (measured)."""
        return int(
            activation_bytes_per_pixel(self.num_features, self.scale, self.multiple, self.precision)
        )

    def _release_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps":
            torch.mps.empty_cache()

    def _run(
        self, pixels: np.ndarray, progress: Progress | None, spreads: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """(H, W, C) float32 with C = model input channels -> (sH, sW, out channels); with
        ``spreads``, the self-ensemble's spread map is appended to it."""
        x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]
        out = self.upscale_tensor(x, progress, spread=spreads is not None).clamp_(0.0, 1.0)
        hwc = out[0].permute(1, 2, 0).contiguous().numpy()  # HWC, contiguous for fast NumPy ops
        if spreads is None:
            return hwc
        spreads.append(hwc[..., -1])
        return np.ascontiguousarray(hwc[..., :-1])

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


def upscale(
    image: np.ndarray,
    model: LoadedModel | nn.Module,
    progress: Progress | None = None,
    **options: object,
) -> np.ndarray:
    """One-call API: ``upscale(img, load_model("x4.pth"), tile=256, precision="bf16")``."""
    return Upscaler(model, UpscaleOptions.checked(**options)).upscale(image, progress)
