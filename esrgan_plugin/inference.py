"""The upscaler: NumPy images in, upscaled NumPy images out, on any device and engine.

Which engine runs the network is chosen once, from the engine table
(:mod:`esrgan_plugin.engines.registry`); ``precision: auto`` is chosen by measurement
(:mod:`esrgan_plugin.engines.precision`). ``tta`` runs each tile through the x8 self-ensemble
(:mod:`esrgan_plugin.ensemble`), whose spread is also the uncertainty map
(:meth:`Upscaler.upscale_with_uncertainty`). Channels, bit depth, tiles and ``outscale`` are
:class:`~esrgan_plugin.tiled_upscaler.TiledUpscaler`'s, shared with the command's fast start.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from esrgan_plugin.arch.padding import padded_network
from esrgan_plugin.arch.registry import architecture_of
from esrgan_plugin.device import (
    bf16_without_hardware_note,
    is_out_of_memory,
    resolve_device,
    resolve_precision,
)
from esrgan_plugin.engines.base import EngineRequest
from esrgan_plugin.engines.precision import PrecisionChoice, choose_precision
from esrgan_plugin.engines.registry import choose_engine
from esrgan_plugin.ensemble import SelfEnsemble
from esrgan_plugin.models.loaded import LoadedModel
from esrgan_plugin.options import UpscaleOptions
from esrgan_plugin.runtime import reuse_freed_memory
from esrgan_plugin.tiled_upscaler import TiledUpscaler, note_tiles_discouraged
from esrgan_plugin.tiles.grid import Progress
from esrgan_plugin.tiles.halo import model_halo

log = logging.getLogger(__name__)

__all__ = ["UpscaleOptions", "Upscaler", "note_tiles_discouraged", "upscale"]


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


class Upscaler(TiledUpscaler):
    """A model placed on a device with a precision; immutable once built, safe to reuse."""

    device: torch.device

    def __init__(
        self, model: LoadedModel | nn.Module, options: UpscaleOptions | None = None
    ) -> None:
        self.options = options = (options or UpscaleOptions()).options()
        module = model.module if isinstance(model, LoadedModel) else model
        self.arch = model.descriptor if isinstance(model, LoadedModel) else architecture_of(module)
        self.needs = needs = self.arch.needs(module.config)
        self.architecture_name = self.arch.name
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
        if self.precision == "bf16" and self.device.type == "cpu":
            note = bf16_without_hardware_note(self.engine.name, self.engine.bf16_without_hardware)
            if note is not None:
                log.warning(note)
        self.module = _frozen_copy(model, module, self.engine.name)
        request = EngineRequest(
            self.module,
            self.arch,
            self.device,
            self.precision,
            options.calibration,
            options.channels_last,
        )
        self.prepared = self.engine.prepare(request)
        """What the engine prepared (before padding to the network's needs)."""
        # every engine then sees sizes the network accepts (minimum, multiple, square)
        self._network = padded_network(self.prepared, needs)
        self.ensemble = SelfEnsemble(self._network, self.multiple)
        if self.device.type == "cpu":
            reuse_freed_memory()  # large activations stay mapped across tiles and calls
        self.batch_size = options.batch_size or (1 if self.device.type == "cpu" else 4)
        self._halo: int | None = None

    # ------------------------------------------------------------------ public API

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

    def upscale_tensor(
        self, x: torch.Tensor, progress: Progress | None = None, spread: bool = False
    ) -> torch.Tensor:
        """Run the network on an NCHW float tensor in [0, 1] (N = 1); returns float32 on the CPU.
        With ``spread``, one more channel: the self-ensemble's spread (see ``upscale_with_uncertainty``)."""
        forward = self._forward_spread if spread else self._forward
        return self.run_network(x, forward, progress).float().cpu()  # type: ignore[no-any-return]

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

    def _is_out_of_memory(self, exc: BaseException) -> bool:
        return is_out_of_memory(exc) or isinstance(exc, MemoryError)

    def _to_batch(self, pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]

    def _to_pixels(self, out: Any) -> np.ndarray:
        return out.clamp_(0.0, 1.0)[0].permute(1, 2, 0).contiguous().numpy()  # type: ignore[no-any-return]

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
        out = self.upscale_tensor(self._to_batch(pixels), progress, spread=spreads is not None)
        hwc = self._to_pixels(out)  # HWC, contiguous for fast NumPy ops
        if spreads is None:
            return hwc
        spreads.append(hwc[..., -1])
        return np.ascontiguousarray(hwc[..., :-1])


def upscale(
    image: np.ndarray,
    model: LoadedModel | nn.Module,
    progress: Progress | None = None,
    **options: object,
) -> np.ndarray:
    """One-call API: ``upscale(img, load_model("x4.pth"), tile=256, precision="bf16")``."""
    return Upscaler(model, UpscaleOptions.checked(**options)).upscale(image, progress)
