"""``precision: auto``: the fastest precision whose output stays within 45 dB of fp32, measured.

Once per model (its weights), device, engine choice and crop set, each precision the device
offers is tried in the order of speed the benchmarks measured (docs/benchmarks.md): on the CPU
int8, then bf16 (only on CPUs with native bf16: AVX512-BF16 or AMX; elsewhere it is emulated and
slower than fp32), then fp32; on CUDA fp16, then bf16 (where the GPU has it), then fp32; on MPS
fp16, then fp32. Each runs the network on the measurement crops next to fp32 (the same engine
choice), and the first whose worst crop is at least :data:`BOUND_DB` dB PSNR against fp32, with
no NaN or Inf and no tile redone by the fp16 guard, is chosen; fp32 is the answer when none is.

The crops are the int8 calibration set (the four built-in photo crops, or the crops of
``calibration`` when given) and two held-out photo crops that int8 is not calibrated on, so its
error is not only measured in-sample. The choice is cached
(:data:`esrgan_plugin.cache.PRECISION_CHOICES`) with every crop's figure, and recorded in
provenance (:meth:`PrecisionChoice.record`). When the measurement cannot run (the fp32 reference
fails), the old rule applies (fp16 on CUDA, fp32 elsewhere: :func:`resolve_precision`) and the
record says why.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from esrgan_plugin.arch.descriptor import Architecture
from esrgan_plugin.cache import PRECISION_CHOICES, entry_path, load, store, weights_sha256
from esrgan_plugin.device import cpu_has_native_bf16, cpu_info, resolve_precision
from esrgan_plugin.engines.base import EngineRequest, Network
from esrgan_plugin.engines.calibration import (
    DEFAULT_CROPS,
    builtin_set_key,
    default_images,
    images_digest,
    user_images,
)
from esrgan_plugin.engines.registry import choose_engine
from esrgan_plugin.errors import InferenceError
from esrgan_plugin.options import UpscaleOptions
from esrgan_plugin.pixels import to_tensor

log = logging.getLogger(__name__)

BOUND_DB = 45.0
"""Smallest PSNR against fp32 (worst crop, outputs clamped to [0, 1]) a faster precision needs."""

SPEED_ORDER: dict[str, tuple[str, ...]] = {
    "cpu": ("int8", "bf16", "fp32"),
    "cuda": ("fp16", "bf16", "fp32"),
    "mps": ("fp16", "fp32"),
}
"""Fastest first, per device type (CPU: docs/benchmarks.md's speed table, int8 1.98-7.74x and
bf16 2.04-4.72x of fp32 with native bf16; GPUs: half-precision tensor cores)."""

HELD_OUT = (("astronaut", 30, 180), ("immunohistochemistry", 200, 200))
"""scikit-image photos and the top-left corners of the two crops int8 is not calibrated on."""

CROP = 64
METHOD_VERSION = 1


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``auto`` chose and why: the precision, its worst-crop PSNR against fp32, and the
    figure (dB) or the reason for every precision tried."""

    precision: str
    psnr_db: float | None
    """Worst crop's PSNR of the chosen precision against fp32; None when fp32 was chosen."""
    tried: dict[str, float | str] = field(default_factory=dict)
    how: str = "measured"
    """``measured`` (now or earlier: the record is the same, so provenance is deterministic), or
    ``fallback: <why the measurement could not run>``."""
    bound_db: float = BOUND_DB
    crops: int = 0

    def record(self) -> dict[str, object]:
        """JSON-ready facts for provenance (also the cache entry's content)."""
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, object]) -> PrecisionChoice:
        psnr = data["psnr_db"]
        tried = data["tried"]
        if not isinstance(tried, dict):
            raise ValueError("tried is not a mapping")
        return cls(
            precision=str(data["precision"]),
            psnr_db=None if psnr is None else float(psnr),  # type: ignore[arg-type]
            tried={str(k): v if isinstance(v, str) else float(v) for k, v in tried.items()},
            how=str(data["how"]),
            bound_db=float(data["bound_db"]),  # type: ignore[arg-type]
            crops=int(data["crops"]),  # type: ignore[call-overload]
        )


def candidates(device: torch.device, arch: Architecture) -> list[str]:
    """The precisions worth trying on ``device``, fastest first (fp32 last)."""
    found = []
    for precision in SPEED_ORDER.get(device.type, ("fp32",)):
        if precision in ("bf16", "fp16") and precision not in arch.precisions:
            continue
        if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
            continue
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            continue
        found.append(precision)
    return found if "fp32" in found else [*found, "fp32"]


def measurement_crops(calibration: str | None, channels: int) -> list[torch.Tensor]:
    """The calibration crops (built-in or ``calibration``'s) and the held-out crops, NCHW."""
    from skimage import data

    raw = default_images() if calibration is None else user_images(calibration)
    raw += [getattr(data, name)()[t : t + CROP, x : x + CROP] for name, t, x in HELD_OUT]
    return [to_tensor(image, channels) for image in raw]


def device_key(device: torch.device) -> str:
    """What makes a measurement valid only on this kind of device (processor model and flags)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return f"cuda|{torch.cuda.get_device_name(index)}|sm{major}{minor}"
    if device.type == "cpu":
        info = cpu_info()
        flags = ",".join(k for k, v in sorted(info.relevant_flags.items()) if v)
        return f"cpu|{info.model}|{flags}"
    return device.type


def choose_precision(
    module: nn.Module, arch: Architecture, device: torch.device, options: UpscaleOptions
) -> PrecisionChoice:
    """``auto``'s precision for ``module`` on ``device`` with ``options``' engine, calibration
    and memory format: from the cache, else measured and cached; the old rule if it cannot be."""
    channels: int = arch.needs(module.config).in_channels  # type: ignore[arg-type]
    crops: list[torch.Tensor] | None = None
    if options.calibration is None:  # the photos are decoded only when no choice is cached
        images_key = builtin_set_key(DEFAULT_CROPS, HELD_OUT, CROP, f"channels={channels}")
    else:
        crops = measurement_crops(options.calibration, channels)
        images_key = images_digest(crops)
    key = PRECISION_CHOICES.key(
        weights_sha256(module),
        device_key(device),
        options.engine,
        str(options.channels_last),
        images_key,
        f"bound={BOUND_DB}|method={METHOD_VERSION}|torch={torch.__version__}",
    )
    path = entry_path(PRECISION_CHOICES, key, device.type)
    found = load(path, _read)
    if found is not None:
        return found
    if crops is None:
        crops = measurement_crops(None, channels)
    try:
        choice = measure(module, arch, device, options, crops)
    except (RuntimeError, InferenceError, MemoryError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        precision = resolve_precision("auto", device, arch.precisions)
        log.warning("precision auto: cannot measure (%s); using %s", reason, precision)
        return PrecisionChoice(precision, None, {}, f"fallback: {reason}", crops=len(crops))
    store(path, lambda tmp: Path(tmp).write_text(json.dumps(choice.record())))
    return choice


def _read(path: Path) -> PrecisionChoice | None:
    return PrecisionChoice.from_record(json.loads(path.read_text()))


def measure(
    module: nn.Module,
    arch: Architecture,
    device: torch.device,
    options: UpscaleOptions,
    crops: list[torch.Tensor],
) -> PrecisionChoice:
    """Try each candidate, fastest first, against fp32 on ``crops``; the first within bound wins."""
    parameters = sum(p.numel() for p in module.parameters())
    reference = _outputs(
        _network(module, arch, device, "fp32", options, parameters), crops, device, options
    )
    tried: dict[str, float | str] = {}
    for precision in candidates(device, arch)[:-1]:
        try:
            network = _network(module, arch, device, precision, options, parameters)
            outputs = _outputs(network, crops, device, options)
        except InferenceError as exc:
            tried[precision] = f"not run: {str(exc).split(': ')[0]}"  # the reasons are long
            continue
        except (RuntimeError, MemoryError) as exc:
            tried[precision] = f"failed: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}"
            continue
        redone = int(getattr(network, "redone", 0))
        if redone:
            tried[precision] = f"rejected: {redone} crop(s) non-finite or black"
            continue
        if not all(bool(torch.isfinite(out).all()) for out in outputs):
            tried[precision] = "rejected: non-finite output"
            continue
        worst = min(_psnr(out, ref) for out, ref in zip(outputs, reference, strict=True))
        tried[precision] = round(worst, 2)
        log.info(
            "precision auto: %s is %.1f dB from fp32 (bound %.0f dB)", precision, worst, BOUND_DB
        )
        if worst >= BOUND_DB:
            return PrecisionChoice(precision, round(worst, 2), tried, crops=len(crops))
    return PrecisionChoice("fp32", None, tried, crops=len(crops))


def _network(
    module: nn.Module,
    arch: Architecture,
    device: torch.device,
    precision: str,
    options: UpscaleOptions,
    parameters: int,
) -> Network:
    engine = choose_engine(options.engine, arch, device, precision, parameters)
    request = EngineRequest(
        copy.deepcopy(module).eval().requires_grad_(False),
        arch,
        device,
        precision,
        options.calibration,
        options.channels_last,
    )
    return engine.prepare(request)


def _outputs(
    network: Network, crops: list[torch.Tensor], device: torch.device, options: UpscaleOptions
) -> list[torch.Tensor]:
    """The network's outputs on each crop, as the upscaler feeds it (device, memory format)."""
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    return [
        network(crop.to(device).contiguous(memory_format=memory_format)).float().cpu()
        for crop in crops
    ]


def _psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB of ``out`` against ``ref``, both clamped to [0, 1] (images); capped at 100."""
    mse = float(((out.clamp(0, 1) - ref.clamp(0, 1)) ** 2).mean())
    return 100.0 if mse <= 1e-10 else min(100.0, 10 * math.log10(1.0 / mse))
