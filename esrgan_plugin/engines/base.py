"""The engine interface: what an engine is asked for, what it returns, and when it refuses.

An engine turns a loaded network into a :data:`Network`, a function on NCHW float tensors in
[0, 1], for one device and precision. Which engine may run what (devices, precisions,
architectures, installed packages) is data on its :class:`Engine` record, and every record
is in one table, :mod:`esrgan_plugin.engines.registry`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the table is read without torch (argument checks, `esrgan engines`)
    import torch
    from torch import nn

    from esrgan_plugin.arch.descriptor import Architecture

Network = Callable[["torch.Tensor"], "torch.Tensor"]
"""NCHW float32 in [0, 1] (on the request's device) -> the upscaled NCHW float output."""


@dataclass(frozen=True)
class EngineRequest:
    """What an engine is asked to prepare: a network, where and how precisely to run it."""

    module: nn.Module
    """The network (fp32, eval mode, on the CPU); engines copy or move what they need."""
    arch: Architecture
    device: torch.device
    precision: str
    """A resolved precision: fp32, bf16, fp16 or int8."""
    calibration: str | None = None
    """int8: folder or image to calibrate on (None = the built-in set)."""
    channels_last: bool = True


@dataclass(frozen=True)
class Runs:
    """One thing an engine runs: on a device type, in these precisions, these architectures."""

    device: str
    precisions: frozenset[str]
    architectures: frozenset[str] | None = None
    """Architecture names; None for any network."""


@dataclass(frozen=True)
class Engine:
    """One engine: what it runs (as data), how to prepare it, and why it may be unavailable."""

    name: str
    description: str
    runs: tuple[Runs, ...]
    prepare_path: str
    """``module:function`` preparing a :data:`Network` from an :class:`EngineRequest`
    (imported on use, so listing engines loads no engine)."""
    missing: Callable[[str], str | None] = field(default=lambda _precision: None)
    """Why the engine cannot run this precision here (a package or a kernel is absent), or None."""
    extra: str = ""
    """The pip extra that installs what it needs."""
    auto_min_parameters: int = 0
    """``auto`` skips the engine for smaller networks: below this size its fixed costs (an
    export, a compilation per input shape) take longer than it saves (measured, ``make bench``)."""
    bf16_without_hardware: str = "emulates it: bf16's rounding, far slower than fp32"
    """What the engine does with bf16 on a CPU without bf16 arithmetic (the warning's words)."""
    exports: bool = False
    """The engine runs an ONNX export of the network, unchecked: it takes only architectures
    whose export is reliable (``Architecture.exportable``)."""

    def supports(self, arch: Architecture, device: torch.device, precision: str) -> str | None:
        """None when this engine runs ``arch`` on ``device`` in ``precision``; else the reason."""
        on_device = [r for r in self.runs if r.device == device.type]
        if not on_device:
            return f"runs on {_listed({r.device for r in self.runs})}, not on {device.type}"
        in_precision = [r for r in on_device if precision in r.precisions]
        if not in_precision:
            runs: set[str] = set().union(*(r.precisions for r in on_device))
            return f"runs {_listed(runs)} on {device.type}, not {precision}"
        if not any(r.architectures is None or arch.name in r.architectures for r in in_precision):
            names = set().union(*(r.architectures or () for r in in_precision))
            return f"runs {precision} on {_listed(names)} models only, not {arch.name}"
        if precision in ("bf16", "fp16") and precision not in arch.precisions:
            return f"cannot run {arch.name} in {precision} ({arch.name} does not support it)"
        if self.exports and not arch.exportable:
            return f"compiles an ONNX export of the network, which {arch.name} does not export reliably"
        return self.missing(precision)

    def prepare(self, request: EngineRequest) -> Network:
        """The engine's network for ``request`` (which :meth:`supports` has accepted)."""
        module_name, _, function = self.prepare_path.partition(":")
        prepare: Callable[[EngineRequest], Network] = getattr(
            importlib.import_module(module_name), function
        )
        return prepare(request)


def _listed(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))
