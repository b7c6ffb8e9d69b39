"""Every engine in one table: what runs where, in which order ``auto`` tries them.

This table is the only place that says which device, precision and architecture an engine
runs (``Engine.supports``); choosing an engine is a walk down it. ``auto`` takes the first
engine that supports the request, in :data:`AUTO_ORDER` (or a precision's own order,
:data:`AUTO_ORDER_BY_PRECISION`), the order ``make bench`` measured fastest at real sizes
(docs/benchmarks.md, "Engines").
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from esrgan_plugin.engines.base import Engine, Runs
from esrgan_plugin.errors import InferenceError

if TYPE_CHECKING:  # the table is read without torch (argument checks, `esrgan engines`)
    import torch

    from esrgan_plugin.arch.descriptor import Architecture

FP32_BF16 = frozenset({"fp32", "bf16"})
INT8 = frozenset({"int8"})
RRDBNET = frozenset({"RRDBNet"})


def _onednn_missing(precision: str) -> str | None:
    from esrgan_plugin.engines.onednn.engine import missing

    return missing(precision)


def _openvino_missing(_precision: str) -> str | None:
    if importlib.util.find_spec("openvino") is None:
        return (
            "needs the openvino package, which is not installed "
            "(pip install 'esrgan-pipelines[openvino]')"
        )
    return None


AUTO_OPENVINO_MIN_PARAMETERS = 1_000_000
"""``auto`` runs smaller networks on the PyTorch engines: OpenVINO's export (seconds) and
compilation per input shape cost more than it saves on them (docs/benchmarks.md, "Engines")."""

OPENVINO_BF16_WITHOUT_HARDWARE = "runs fp32 instead (OpenVINO's own choice)"
"""OpenVINO compiles a bf16 hint as f32 on such CPUs (its ``INFERENCE_PRECISION_HINT`` reads
back f32; seen on an AVX2-only AMD EPYC)."""

ENGINES: tuple[Engine, ...] = (
    Engine(
        name="openvino",
        description="the network exported to ONNX and compiled by OpenVINO (our int8 "
        "quantisation points and calibration); exported once per model and cached, compiled "
        "once per process for any input shape",
        runs=(Runs("cpu", FP32_BF16), Runs("cpu", INT8, RRDBNET)),
        prepare_path="esrgan_plugin.engines.openvino.engine:prepare",
        missing=_openvino_missing,
        extra="openvino",
        auto_min_parameters=AUTO_OPENVINO_MIN_PARAMETERS,
        bf16_without_hardware=OPENVINO_BF16_WITHOUT_HARDWARE,
        exports=True,
    ),
    Engine(
        name="onednn",
        description="PyTorch's oneDNN kernels with bias, activation and residual sums fused; "
        "int8 dense blocks calibrated on photos",
        runs=(Runs("cpu", FP32_BF16 | INT8, RRDBNET),),
        prepare_path="esrgan_plugin.engines.onednn.engine:prepare",
        missing=_onednn_missing,
    ),
    Engine(
        name="pytorch",
        description="the network's own PyTorch module, bf16/fp16 under autocast; every "
        "architecture on every device",
        runs=(
            Runs("cpu", FP32_BF16),
            Runs("cuda", frozenset({"fp32", "bf16", "fp16"})),
            Runs("mps", frozenset({"fp32", "fp16"})),
        ),
        prepare_path="esrgan_plugin.engines.pytorch:prepare",
    ),
)
"""Every engine, by name."""

AUTO_ORDER: tuple[str, ...] = ("openvino", "onednn", "pytorch")
"""What ``auto`` tries, fastest first, as measured by ``make bench`` on RealESRGAN_x4plus at
192x192 and 512x512 (docs/benchmarks.md, "Engines"; in fp32 onednn beat pytorch at 512x512,
1.15x against 1.09x spandrel, and lost at 192x192, 1.03x against 1.11x)."""

AUTO_ORDER_BY_PRECISION: dict[str, tuple[str, ...]] = {
    "bf16": ("openvino", "pytorch", "onednn"),
}
"""Where a precision's measured order differs: in bf16 the module under autocast beat onednn's
fused kernels on both CPUs measured (x4plus 1.32x at 512x512, default-psnr 1.40x at 192x192 on
the AMX Xeon; level, 2.14x against 2.04x spandrel fp32, on the EPYC without AMX)."""


def auto_order(precision: str) -> tuple[str, ...]:
    """The engines ``auto`` tries for ``precision``, fastest first."""
    return AUTO_ORDER_BY_PRECISION.get(precision, AUTO_ORDER)


GROUPS: dict[str, tuple[str, ...]] = {
    "torch": ("onednn", "pytorch"),
}
"""Engine choices, besides ``auto`` (:func:`auto_order`), that stand for several engines: the
first that supports the request runs. ``torch`` (the PyTorch engines) is kept for files and
commands written before ``auto``."""

DEVICE_NAMES = {"cpu": "the CPU", "cuda": "CUDA", "mps": "MPS"}

ENGINE_CHOICES: tuple[str, ...] = ("auto", *GROUPS, *(engine.name for engine in ENGINES))
"""What ``--engine`` accepts."""


def engine_named(name: str) -> Engine:
    """The engine called ``name``."""
    for engine in ENGINES:
        if engine.name == name:
            return engine
    raise InferenceError(f"unknown engine {name!r}; expected one of {', '.join(ENGINE_CHOICES)}")


def choose_engine(
    choice: str,
    arch: Architecture,
    device: torch.device,
    precision: str,
    parameters: int | None = None,
) -> Engine:
    """The engine that runs ``arch`` on ``device`` in ``precision`` for the choice ``choice``
    (an engine's name, ``auto`` or ``torch``); a one-line error naming each engine's reason.
    ``auto`` also weighs the network's size (``parameters``; None counts as large)."""
    names = auto_order(precision) if choice == "auto" else GROUPS.get(choice, (choice,))
    check_precision_on(device.type, precision)
    reasons = []
    for name in names:
        engine = engine_named(name)
        reason = engine.supports(arch, device, precision)
        small = parameters is not None and parameters < engine.auto_min_parameters
        if reason is None and choice == "auto" and small:
            reason = (
                f"is not worth its fixed costs for {parameters:,} parameters "
                f"(auto uses it from {engine.auto_min_parameters:,})"
            )
        if reason is None:
            return engine
        reasons.append((name, reason))
    what = f"{arch.name} in {precision} on {device.type}"
    if len(names) == 1:
        raise InferenceError(f"engine {choice} cannot run {what}: it {reasons[0][1]}")
    listed = "; ".join(f"{name} {reason}" for name, reason in reasons)
    raise InferenceError(f"no engine ({choice}) can run {what}: {listed}")


def check_precision_on(device_type: str, precision: str) -> None:
    """A one-line error when no engine runs ``precision`` on this kind of device (needs no torch,
    so the command line refuses fp16 on the CPU before loading anything)."""
    anywhere: set[str] = set().union(
        *(r.precisions for engine in ENGINES for r in engine.runs if r.device == device_type)
    )
    if precision not in anywhere:
        where = DEVICE_NAMES.get(device_type, device_type)
        *others, last = sorted(anywhere)
        options = f"{', '.join(others)} or {last}" if others else last
        raise InferenceError(f"precision {precision} is not supported on {where}; use {options}")


def describe_engines() -> list[dict[str, object]]:
    """Every engine as ``esrgan engines --json`` lists it (installed or not, and why not)."""
    rows = []
    for engine in ENGINES:
        precisions = sorted(set().union(*(r.precisions for r in engine.runs)))
        missing = {p: engine.missing(p) for p in precisions}
        rows.append(
            {
                "name": engine.name,
                "description": engine.description,
                "runs": [
                    {
                        "device": r.device,
                        "precisions": sorted(r.precisions),
                        "architectures": sorted(r.architectures) if r.architectures else "any",
                    }
                    for r in engine.runs
                ],
                "installed": any(reason is None for reason in missing.values()),
                "unavailable": {p: reason for p, reason in missing.items() if reason is not None},
                "auto_rank": AUTO_ORDER.index(engine.name) + 1
                if engine.name in AUTO_ORDER
                else None,
                "auto_rank_by_precision": {
                    p: order.index(engine.name) + 1
                    for p, order in AUTO_ORDER_BY_PRECISION.items()
                    if engine.name in order and p in precisions
                },
                "extra": engine.extra or None,
                "auto_min_parameters": engine.auto_min_parameters,
            }
        )
    return rows
