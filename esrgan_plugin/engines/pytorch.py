"""The ``pytorch`` engine: the network's own module on any device, bf16/fp16 under autocast.

It runs every architecture everywhere PyTorch does; the other engines are faster where they
apply. An fp16 output that overflows (non-finite values) is recomputed in fp32, with a warning
once per engine.
"""

from __future__ import annotations

import contextlib
import logging

import torch

from esrgan_plugin.engines.base import EngineRequest, Network

log = logging.getLogger(__name__)

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def prepare(request: EngineRequest) -> Network:
    """The module on the request's device, called as its architecture says inference calls it."""
    module = request.module.to(request.device)
    if request.channels_last:
        module = module.to(memory_format=torch.channels_last)
    forward = request.arch.inference_forward(module)
    dtype = AUTOCAST.get(request.precision)
    device_type = request.device.type
    warned: list[bool] = []

    def context() -> contextlib.AbstractContextManager[object]:
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=dtype)

    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), context():
            out = forward(batch)
        if dtype is torch.float16 and not torch.isfinite(out).all():
            if not warned:
                log.warning("fp16 overflowed (non-finite output); recomputing in fp32")
                warned.append(True)
            with torch.no_grad():
                out = forward(batch)
        return out

    return run
