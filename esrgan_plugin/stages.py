"""The ESRGAN pipeline stages, as declarations: ``esrgan.upscale``, ``esrgan.uncertainty`` and
``esrgan.interpolate``.

Stage functions take plain NumPy images and parameter models, so any host (our runner, a Dask
``map_blocks``, a foreign application) can call them. Planning a job (halo, scale, block
multiple, provenance) reads the model's descriptor and the halo cache, never builds an engine;
the engines and models behind the functions are cached per process
(:mod:`esrgan_plugin.engines.upscalers`). Training registers ``esrgan.train`` from its own package.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, field_validator

from esrgan_plugin.errors import EsrganError
from esrgan_plugin.options import UncertaintyParams, UpscaleParams
from pipelines.api import StageParams, StageSpec

if TYPE_CHECKING:  # torch is imported when a stage first runs or plans, not when stages are listed
    from esrgan_plugin.models.loaded import LoadedModel


class InterpolateParams(StageParams):
    """Parameters of ``esrgan.interpolate``."""

    model_a: str = Field(
        description="the PSNR-oriented model (alpha = 0): a file or a model name (`esrgan models`)"
    )
    model_b: str = Field(description="the GAN model (alpha = 1), of the same architecture")
    alpha: float = Field(
        ge=0, le=1, description="weight of model_b: (1 - alpha) * model_a + alpha * model_b"
    )
    output: str = Field(description="the interpolated model's .safetensors file")
    overwrite: bool = Field(False, description="replace an existing output file")

    @field_validator("output")
    @classmethod
    def _safetensors(cls, value: str) -> str:
        if not value.lower().endswith(".safetensors"):
            raise ValueError(f"{value!r}: the output must be a .safetensors file")
        return value


# --------------------------------------------------------------------------- stage functions


def upscale(image: np.ndarray, params: UpscaleParams) -> np.ndarray:
    """Upscale one (H, W) or (H, W, C) image (uint8, uint16 or float); same dtype and channels.

    Grey, RGB and RGBA go through the model as they are; any other channel count (2, 5, ...:
    scientific channels, not colours) is upscaled channel by channel through the grey path.
    """
    from esrgan_plugin.engines.upscalers import device_lock, upscaler_for

    upscaler = upscaler_for(params)
    image = np.asarray(image)
    with device_lock(str(upscaler.device)):
        if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
            planes = [upscaler.upscale(image[..., c]) for c in range(image.shape[2])]
            return np.stack(planes, axis=-1)
        return upscaler.upscale(image)


def _model(params: UpscaleParams) -> LoadedModel:
    from esrgan_plugin.engines.upscalers import params_model

    return params_model(params)


def upscale_pin(params: UpscaleParams) -> UpscaleParams:
    """The parameters every task of a job runs with: each model pinned to its file's SHA-256,
    so that workers of a long-lived cluster never run a file replaced since (even one of the
    same size and modification time, as ``cp -p`` leaves it)."""
    from esrgan_plugin.engines.upscalers import pin_models

    return pin_models(params)


def upscale_halo(params: UpscaleParams) -> int:
    """Input pixels of context around a block: ``halo``, else the halo the model needs
    (measured once per weights, cached; for an interpolation, on the interpolated weights)."""
    if params.halo is not None:
        return params.halo
    from esrgan_plugin.tiles.halo import model_halo

    return model_halo(_model(params).module).halo


def upscale_scale(params: UpscaleParams) -> float | None:
    """Output size / input size: ``outscale``, else the model's scale."""
    if params.outscale is not None:
        return params.outscale
    return float(_model(params).scale)


def upscale_multiple(params: UpscaleParams) -> int:
    """Block starts fall on multiples of the model's pixel-unshuffle factor (x1/x2 models), as its tiles do."""
    return int(_model(params).multiple_of)


def upscale_provenance(params: UpscaleParams) -> dict[str, object]:
    """What these parameters resolve to: each model's name, file, SHA-256 and architecture, and
    the scale, halo, tile, precision (for ``auto``: the measured choice and its dB against fp32),
    device, engine and self-ensemble used (resolved here, where the job is planned). Part of the
    job fingerprint: a model file replaced between a crash and its re-run is a new job."""
    import torch

    from esrgan_plugin.device import resolve_device, resolve_precision
    from esrgan_plugin.engines.precision import choose_precision
    from esrgan_plugin.engines.registry import choose_engine

    model = _model(params)
    device = resolve_device(params.device)
    choice = None
    if params.precision == "auto":  # measured once per model and device, cached
        choice = choose_precision(model.module, model.descriptor, device, params)
    precision = (
        choice.precision
        if choice is not None
        else resolve_precision(params.precision, device, model.descriptor.precisions)
    )
    out: dict[str, object] = {
        "model": _model_facts(params.model),
        "scale": params.outscale if params.outscale is not None else model.scale,
        "halo": upscale_halo(params),
        "tile": params.tile
        if params.tile is not None
        else "auto (per block: from the model's halo and total memory)",
        "precision": precision,
        "device": str(device),
        "engine": choose_engine(
            params.engine,
            model.descriptor,
            device,
            precision,
            model.descriptor.parameters(model.config),
        ).name,
        "tta": params.tta,
        "torch": torch.__version__,
        "esrgan_plugin": project_version(),
    }
    if choice is not None:
        out["precision_auto"] = choice.record()
    if params.interpolate_with is not None:
        out["interpolate_with"] = _model_facts(params.interpolate_with)
        out["alpha"] = params.alpha
    return out


def uncertainty(image: np.ndarray, params: UncertaintyParams) -> np.ndarray:
    """The uncertainty map of ``esrgan.upscale``'s output with these parameters, as an image of
    the input's dtype and channels (esrgan_plugin.uncertainty.stage)."""
    from esrgan_plugin.uncertainty import stage

    return stage(image, params)


def uncertainty_halo(params: UncertaintyParams) -> int:
    """The larger of the model's halo and the reference model's."""
    reference = params.reference_params()
    return max(upscale_halo(params), upscale_halo(reference) if reference else 0)


def uncertainty_multiple(params: UncertaintyParams) -> int:
    """Block starts suit both the model and the reference (unshuffle factors 1, 2 or 4)."""
    reference = params.reference_params()
    return max(upscale_multiple(params), upscale_multiple(reference) if reference else 1)


def uncertainty_provenance(params: UncertaintyParams) -> dict[str, object]:
    """:func:`upscale_provenance`, the reference model's facts and the map's scale."""
    from esrgan_plugin.uncertainty import MAP_DEFINITION

    out = upscale_provenance(params)
    if params.uncertainty_reference is not None:
        out["uncertainty_reference"] = _model_facts(params.uncertainty_reference)
    out["uncertainty_map"] = {"definition": MAP_DEFINITION, "gain": params.uncertainty_gain}
    return out


def _model_facts(name: str) -> dict[str, object]:
    from esrgan_plugin.engines.upscalers import cached_model, file_key, model_sha256

    model = cached_model(name)
    return {
        "name": name,
        "file": file_key(name)[0],
        "sha256": model_sha256(name),
        "architecture": model.architecture,
        "layout": model.layout,
        "scale": model.scale,
    }


def project_version() -> str:
    """This distribution's version ('unknown' when run from a source tree without metadata)."""
    try:
        return version("esrgan-pipelines")
    except PackageNotFoundError:
        return "unknown"


def interpolate(params: InterpolateParams) -> str:
    """Write the network interpolation of two models; returns the output file's path."""
    from esrgan_plugin.engines.upscalers import cached_model
    from esrgan_plugin.interpolate import interpolate_models
    from esrgan_plugin.models.loading import save_model

    out = Path(params.output)
    if out.exists() and not params.overwrite:
        raise EsrganError(f"{out}: output exists (set overwrite: true to replace it)")
    model = interpolate_models(
        cached_model(params.model_a), cached_model(params.model_b), params.alpha
    )
    save_model(out, model.module, model.metadata)
    return str(out)


def stage_specs() -> list[StageSpec]:
    """The ESRGAN stages, as the ``register_stages`` hook returns them."""
    return [
        StageSpec(
            id="esrgan.upscale",
            description="Super-resolve or restore images with any model `esrgan models` names or spandrel "
            "loads (RRDBNet, SRVGGNetCompact, SPAN, SwinIR, HAT, DAT, OmniSR, RealPLKSR, ...), tiled without "
            "seams; an x1 model (deJPEG, denoise, deblur) restores at the same size, so restore-then-upscale "
            "is two steps of this stage; optionally interpolating two models of one architecture on the fly "
            "(network interpolation, paper section 3.4).",
            params=UpscaleParams,
            fn=upscale,
            halo=upscale_halo,
            scale=upscale_scale,
            multiple=upscale_multiple,
            provenance=upscale_provenance,
            pin=upscale_pin,
        ),
        StageSpec(
            id="esrgan.uncertainty",
            description="Where esrgan.upscale's output (same parameters) is unsure: the spread of the "
            "x8 self-ensemble (standard deviation over flips and rotations), combined with the "
            "disagreement with a paired PSNR-oriented model when uncertainty_reference is given. "
            "Output: the map in every colour channel of the input's dtype (alpha opaque), "
            "value = min(1, uncertainty_gain x uncertainty); feed it to builtin.write from the "
            "same input as the upscale step (docs/evaluation.md, 'Uncertainty maps').",
            params=UncertaintyParams,
            fn=uncertainty,
            halo=uncertainty_halo,
            scale=upscale_scale,
            multiple=uncertainty_multiple,
            provenance=uncertainty_provenance,
        ),
        StageSpec(
            id="esrgan.interpolate",
            description="Interpolate two models of the same architecture, (1 - alpha) * A + alpha * B, and write "
            "the result as a .safetensors model artefact.",
            params=InterpolateParams,
            fn=interpolate,
            consumes=None,
            produces="artefact",
        ),
    ]
