"""Devices and precisions for inference: auto-detection and validation, CPU and memory facts.

PyTorch is imported only to find or query an accelerator; the CPU facts need none of it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from esrgan_plugin.errors import InferenceError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
"""The precisions an engine may run (``auto`` resolves to one of them)."""


class DeviceLike(Protocol):
    """What the tile and memory rules read of a device: its type (``torch.device`` has it)."""

    @property
    def type(self) -> str: ...


@dataclass(frozen=True)
class DeviceType:
    """A device known by its type alone, for code that runs without torch (the fast start)."""

    type: str

    def __str__(self) -> str:
        return self.type


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; explicit names are checked to exist."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise InferenceError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N, mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InferenceError(
                f"device {name!r} requested but CUDA is not available to PyTorch here"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise InferenceError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    if name == "mps" and not _mps_available():
        raise InferenceError("device 'mps' requested but the MPS backend is not available here")
    return torch.device(name)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_precision(
    name: str, device: DeviceLike, precisions: Collection[str] = PRECISIONS
) -> str:
    """A precision name, with ``auto`` resolved: fp16 on CUDA when the architecture runs in fp16
    (its ``precisions``), fp32 elsewhere. Which engine runs it is the engine table's question."""
    name = (name or "auto").strip().lower()
    if name not in (*PRECISIONS, "auto"):
        raise InferenceError(f"precision {name!r} is not one of {', '.join((*PRECISIONS, 'auto'))}")
    if name == "auto":
        return "fp16" if device.type == "cuda" and "fp16" in precisions else "fp32"
    return name


@dataclass(frozen=True)
class CpuInfo:
    """What a benchmark table must say about the CPU it ran on."""

    model: str
    flags: frozenset[str]
    cores: int

    @property
    def relevant_flags(self) -> dict[str, bool]:
        """avx512_bf16 / AMX / AVX512-VNNI: what decides bf16 and int8 speed here."""
        return {
            "avx512_bf16": "avx512_bf16" in self.flags,
            "amx": bool({"amx_bf16", "amx_tile"} & self.flags),
            "avx512_vnni": "avx512_vnni" in self.flags,
        }


def cpu_info() -> CpuInfo:
    """Model name and feature flags from /proc/cpuinfo (Linux); platform name elsewhere."""
    import os
    import platform

    model, flags = "", frozenset[str]()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = frozenset(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    return CpuInfo(model, flags, os.cpu_count() or 1)


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 arithmetic (AVX512-BF16 or AMX), so bf16 convs beat fp32."""
    info = cpu_info().relevant_flags
    return info["avx512_bf16"] or info["amx"]


def bf16_without_hardware_note(engine: str, what_it_does: str) -> str | None:
    """The warning for bf16 on a CPU without bf16 arithmetic (None where it has it): asked for
    explicitly, bf16 then brings bf16's rounding without its speed (``auto`` never picks it;
    PyTorch's emulated bf16 ran RealESRGAN_x4plus 350x slower than fp32 on an AVX2-only AMD
    EPYC: 460 against 1.3 s at 64x64)."""
    if cpu_has_native_bf16():
        return None
    return (
        "precision bf16: this CPU has no bf16 arithmetic (AVX512-BF16 or AMX); engine "
        f"{engine} {what_it_does}; use fp32"
    )


def free_memory_bytes(device: DeviceLike) -> int:
    """Memory available for activations on ``device`` (GPU free memory, or MemAvailable)."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(str(device))
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30  # unknown platform: assume 4 GiB


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the allocator errors a smaller tile can avoid (CUDA, MPS or CPU)."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "DefaultCPUAllocator: can't allocate memory" in text
    )
