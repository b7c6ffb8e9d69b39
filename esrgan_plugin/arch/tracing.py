"""Whether a network can be traced into a graph (ONNX export): what makes a tracer fail.

Some architectures rewrite their own weights while they run: spandrel's SPAN re-derives each
re-parameterised convolution's weights from its training branches on every call (assigning
``.data``). PyTorch's ``torch.export``-based ONNX exporter cannot trace that (in PyTorch 2.14 it
crashes the process with a segmentation fault), so such networks are refused with one line
before any tracing is attempted.
"""

from __future__ import annotations

from itertools import chain

import torch
from torch import nn


def rewrites_own_weights(module: nn.Module, example: torch.Tensor) -> bool:
    """Whether one forward pass on ``example`` replaces or changes any parameter or buffer
    (a new tensor assigned to ``.data``, or an in-place update)."""

    def state() -> dict[str, tuple[int, int]]:
        tensors = chain(module.named_parameters(), module.named_buffers())
        return {name: (t.data_ptr(), t._version) for name, t in tensors}

    before = state()
    with torch.no_grad():
        module(example)
    return state() != before


def network_name(module: nn.Module) -> str:
    """The architecture's name for messages (the class name for unregistered networks)."""
    from esrgan_plugin.arch.registry import architecture_of

    try:
        return architecture_of(module).name
    except TypeError:
        return type(module).__name__


def trace_refusal(module: nn.Module, example: torch.Tensor) -> str | None:
    """Why ``module`` cannot be traced into a graph, in one line; None when nothing is known."""
    if rewrites_own_weights(module, example):
        return (
            "not exported: the network rewrites its own weights on every call (re-parameterised "
            "convolutions), which PyTorch's ONNX exporter cannot trace"
        )
    return None
