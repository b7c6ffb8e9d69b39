"""The ``pytorch`` engine: the network's own module on any device, bf16/fp16 under autocast.

It runs every architecture everywhere PyTorch does; the other engines are faster where they
apply. A tile whose fp16 output is non-finite or black is redone in bf16 where the device and
architecture run it, else in fp32, with a one-line warning (:mod:`esrgan_plugin.engines.fallback`).
"""

from __future__ import annotations

import contextlib

import torch

from esrgan_plugin.engines.base import EngineRequest, Network
from esrgan_plugin.engines.fallback import GuardedNetwork

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def prepare(request: EngineRequest) -> Network:
    """The module on the request's device, called as its architecture says inference calls it."""
    module = request.module.to(request.device)
    if request.channels_last:
        module = module.to(memory_format=torch.channels_last)
    forward = request.arch.inference_forward(module)
    device_type = request.device.type

    def runner(precision: str) -> Network:
        dtype = AUTOCAST.get(precision)

        def run(batch: torch.Tensor) -> torch.Tensor:
            context: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
            if dtype is not None:
                context = torch.autocast(device_type=device_type, dtype=dtype)
            with torch.no_grad(), context:
                return forward(batch)

        return run

    if request.precision != "fp16":
        return runner(request.precision)
    fallbacks = [(p, runner(p)) for p in ("bf16", "fp32") if p == "fp32" or _runs_bf16(request)]
    return GuardedNetwork(runner("fp16"), fallbacks)


def _runs_bf16(request: EngineRequest) -> bool:
    """bf16 is a fallback where the architecture supports it and the device has it."""
    if "bf16" not in request.arch.precisions:
        return False
    if request.device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return request.device.type == "cpu"
