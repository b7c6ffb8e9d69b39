"""Whether the benchmarks' bf16 runs belong on this CPU, and the line that says when they do not.

On a CPU without bf16 arithmetic (no AVX512-BF16, no AMX: e.g. an AVX2-only AMD EPYC) bf16
measures nothing worth a table: PyTorch emulates it (RealESRGAN_x4plus at 64x64 took 460 s
against 1.3 s in fp32), oneDNN's bf16 convolutions raise and OpenVINO silently runs f32. The
bench scripts leave their bf16 runs out there and print :data:`BF16_LEFT_OUT` once instead.
A module of its own, free of import-time side effects, so that every bench script can use it
(``bench_inference`` sets ``OMP_WAIT_POLICY`` when imported).
"""

from __future__ import annotations

from esrgan_plugin.device import cpu_has_native_bf16

NO_BF16_ARITHMETIC = (
    "this CPU has no bf16 arithmetic (AVX512-BF16 or AMX); PyTorch would emulate it "
    "(about 350x slower than fp32) and OpenVINO would run fp32"
)
"""Why bf16 is not worth running here (the end of :data:`BF16_LEFT_OUT`, and of warnings)."""

BF16_LEFT_OUT = f"bf16 left out: {NO_BF16_ARITHMETIC}"
"""The one note line a bench script prints where it leaves its bf16 runs out."""


def bf16_here() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 runs are worth
    timing; elsewhere they would time PyTorch's emulation (hours) or OpenVINO's f32."""
    return cpu_has_native_bf16()


def float_precisions() -> tuple[str, ...]:
    """The float precisions a table times here: fp32 and bf16, or fp32 alone where the CPU has
    no bf16 arithmetic (print :data:`BF16_LEFT_OUT` then)."""
    return ("fp32", "bf16") if bf16_here() else ("fp32",)
