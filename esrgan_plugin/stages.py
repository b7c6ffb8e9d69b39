"""The ESRGAN pipeline stages: ``esrgan.upscale`` and ``esrgan.interpolate``.

Stage functions take plain NumPy images and parameter models, so any host (our runner, a Dask
``map_blocks``, a foreign application) can call them. Models are loaded once per process and
cached by file identity, device, precision and interpolation; the Dask graph carries only the
parameters, never a model. Training registers ``esrgan.train`` from its own package.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from pydantic import Field, field_validator

from esrgan_plugin.errors import EsrganError
from esrgan_plugin.options import UpscaleParams
from pipelines.api import StageParams, StageSpec

if TYPE_CHECKING:  # torch is imported when a stage first runs, not when stages are listed
    from esrgan_plugin.checkpoint import LoadedModel
    from esrgan_plugin.inference import Upscaler

TORCH_THREADS_ENV = "ESRGAN_TORCH_THREADS"
"""Environment variable that sets torch's intra-op threads for pipeline inference."""

_CACHE_SIZE = 4


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
    upscaler = upscaler_for(params)
    image = np.asarray(image)
    with _device_lock(str(upscaler.device)):
        if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
            planes = [upscaler.upscale(image[..., c]) for c in range(image.shape[2])]
            return np.stack(planes, axis=-1)
        return upscaler.upscale(image)


def _resolved_halo(params: UpscaleParams, model: LoadedModel) -> int | str:
    """The halo given, else the one the model needs (measured once per weights, cached)."""
    if params.halo is not None:
        return params.halo
    if params.interpolate_with is not None:
        return "auto (measured on the interpolated weights)"
    from esrgan_plugin.halo import model_halo

    return model_halo(model.module).halo


def upscale_provenance(params: UpscaleParams) -> dict[str, object]:
    """What these parameters resolve to: each model's name, file, SHA-256 and architecture, and
    the scale, halo, tile, precision and device used (resolved here, where the job is planned).
    Part of the job fingerprint: a model file replaced between a crash and its re-run is a new job."""
    import torch

    from esrgan_plugin.device import resolve_device, resolve_precision

    model = _load(params.model)
    device = resolve_device(params.device)
    out: dict[str, object] = {
        "model": _model_facts(params.model, model),
        "scale": params.outscale if params.outscale is not None else model.scale,
        "halo": _resolved_halo(params, model),
        "tile": params.tile
        if params.tile is not None
        else "auto (per block: from the model's halo and total memory)",
        "precision": resolve_precision(params.precision, device).name,
        "device": str(device),
        "engine": params.engine,
        "torch": torch.__version__,
        "esrgan_plugin": _version(),
    }
    if params.interpolate_with is not None:
        out["interpolate_with"] = _model_facts(
            params.interpolate_with, _load(params.interpolate_with)
        )
        out["alpha"] = params.alpha
    return out


def _model_facts(name: str, model: LoadedModel) -> dict[str, object]:
    key = file_key(name)
    return {
        "name": name,
        "file": key[0],
        "sha256": _HASHES.get(key, lambda: _file_hash(key[0])),
        "architecture": model.architecture,
        "layout": model.layout,
        "scale": model.scale,
    }


def _file_hash(path: str) -> str:
    """SHA-256 of a model file (an ncnn model: of its .param and .bin together)."""
    import hashlib

    digest = hashlib.sha256()
    files = [Path(path)]
    if files[0].suffix.lower() == ".param":
        files.append(files[0].with_suffix(".bin"))
    for file in files:
        with open(file, "rb") as f:
            for part in iter(lambda: f.read(1 << 20), b""):
                digest.update(part)
    return digest.hexdigest()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("esrgan-pipelines")
    except PackageNotFoundError:
        return "unknown"


def upscale_scale(params: UpscaleParams) -> float | None:
    """Output size / input size: ``outscale``, else the model's scale."""
    if params.outscale is not None:
        return params.outscale
    return float(_load(params.model).scale)


def upscale_halo(params: UpscaleParams) -> int:
    """Input pixels of context around a block: ``halo``, else the model's measured halo."""
    if params.halo is not None:
        return params.halo
    return upscaler_for(params).halo


def upscale_multiple(params: UpscaleParams) -> int:
    """Block starts fall on multiples of the model's pixel-unshuffle factor (x1/x2 models), as its tiles do."""
    return int(_load(params.model).multiple_of)


def interpolate(params: InterpolateParams) -> str:
    """Write the network interpolation of two models; returns the output file's path."""
    out = Path(params.output)
    if out.exists() and not params.overwrite:
        raise EsrganError(f"{out}: output exists (set overwrite: true to replace it)")
    from esrgan_plugin.checkpoint import save_model
    from esrgan_plugin.interpolate import interpolate_models

    model = interpolate_models(_load(params.model_a), _load(params.model_b), params.alpha)
    save_model(out, model.module, model.metadata)
    return str(out)


def stage_specs() -> list[StageSpec]:
    """The ESRGAN stages, as the ``register_stages`` hook returns them."""
    return [
        StageSpec(
            id="esrgan.upscale",
            description="Super-resolve images with an ESRGAN-family model (RRDBNet or SRVGGNetCompact), tiled without seams; optionally "
            "interpolating two models on the fly (network interpolation, paper section 3.4).",
            params=UpscaleParams,
            fn=upscale,
            halo=upscale_halo,
            scale=upscale_scale,
            multiple=upscale_multiple,
            provenance=upscale_provenance,
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


# --------------------------------------------------------------------------- per-process caches

V = TypeVar("V")


class _LRU:
    """A small thread-safe least-recently-used cache; values are built at most once per key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, object] = OrderedDict()
        self.lock = threading.RLock()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]  # type: ignore[return-value]
            value = build()
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_MODELS = _LRU(_CACHE_SIZE)
_UPSCALERS = _LRU(_CACHE_SIZE)
_HASHES = _LRU(16)
_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_THREAD_ENVS = (TORCH_THREADS_ENV, "OMP_NUM_THREADS")


def file_key(name_or_path: str) -> tuple[str, int, int]:
    """(resolved path, mtime in ns, size) of a model file: a changed file is a new cache entry."""
    from esrgan_plugin.formats.ncnn import is_ncnn_path
    from esrgan_plugin.zoo import resolve_model_path

    path = resolve_model_path(name_or_path).expanduser()
    try:
        stat = path.stat()
        if is_ncnn_path(path):  # an ncnn model is two files
            other = path.with_suffix(".bin" if path.suffix.lower() == ".param" else ".param")
            weights = other.stat()
            key = str(path.resolve().with_suffix(".param"))
            return (key, max(stat.st_mtime_ns, weights.st_mtime_ns), stat.st_size + weights.st_size)
    except OSError:
        return (str(path), -1, -1)  # load_model reports the missing file
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _load(name_or_path: str) -> LoadedModel:
    """The model for a file or shipped name, loaded once per process and file version."""
    from esrgan_plugin.checkpoint import load_model

    return _MODELS.get(file_key(name_or_path), lambda: load_model(name_or_path))


def upscaler_for(params: UpscaleParams) -> Upscaler:
    """The (cached) upscaler for these parameters: model, interpolation, device and options."""
    _configure_torch_threads()
    options = params.options()
    model_key: tuple[object, ...] = (file_key(params.model),)
    if params.interpolate_with is not None:
        model_key += (file_key(params.interpolate_with), params.alpha)

    def build() -> Upscaler:
        from esrgan_plugin.inference import Upscaler
        from esrgan_plugin.interpolate import interpolate_models

        model = _load(params.model)
        if params.interpolate_with is not None:
            model = interpolate_models(
                model, _load(params.interpolate_with), float(params.alpha or 0.0)
            )
        return Upscaler(model, options)

    return _UPSCALERS.get((model_key, options), build)


def _device_lock(device: str) -> threading.Lock:
    """One inference at a time per device in this process; torch threads do the parallel work."""
    with _UPSCALERS.lock:
        return _DEVICE_LOCKS.setdefault(device, threading.Lock())


def _configure_torch_threads() -> None:
    """Cap torch's threads at ``ESRGAN_TORCH_THREADS``, else ``OMP_NUM_THREADS``, when either is set.

    Read on every call: a Dask runner may set ``OMP_NUM_THREADS`` in a worker process that had
    already imported torch, which would otherwise keep using every core in each worker.
    """
    name = next((n for n in _THREAD_ENVS if os.environ.get(n, "").strip()), None)
    if name is None:
        return
    value = os.environ[name].strip()
    try:
        threads = max(1, int(value))
    except ValueError:
        raise EsrganError(f"{name}={value!r} is not a whole number") from None
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def clear_caches() -> None:
    """Forget every cached model and upscaler (tests, or to free memory)."""
    _MODELS.clear()
    _UPSCALERS.clear()
    _HASHES.clear()
