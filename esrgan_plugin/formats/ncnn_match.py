"""ncnn layers as signature strings, and the tools architecture matchers compare them with.

Each architecture (its ``ncnn`` module in :mod:`esrgan_plugin.arch`) is matched by its sequence
of layer signatures (kind, channel counts, kernel, activation, coefficients; ``Split`` layers,
which only fan blobs out, are skipped): the hyperparameters are read off the first layers, the
full sequence that configuration must have is generated, and the two are compared layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esrgan_plugin.formats.ncnn import NcnnGraph, NcnnLayer

StateDict = dict[str, torch.Tensor]

_ACTIVATIONS = {
    0: "",
    1: "relu",
    2: "leakyrelu",
    3: "clip",
    4: "sigmoid",
    5: "mish",
    6: "hardswish",
}
_ELTWISE_OPS = {0: "prod", 1: "sum", 2: "max"}
_BINARY_OPS = {0: "add", 1: "sub", 2: "mul", 3: "div", 4: "max", 5: "min", 6: "pow"}
_RESIZE = {1: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True)
class Step:
    """One layer as the matchers see it: a signature string and the layer it came from."""

    signature: str
    layer: NcnnLayer | None = None


def conv_signature(cin: int, cout: int, act: str = "", kernel: int = 3, extra: str = "") -> str:
    """``Convolution 64->32 3x3 + leakyrelu(0.2)``: what a canonical 3x3 conv looks like."""
    return f"Convolution {cin}->{cout} {kernel}x{kernel}{extra}" + (f" + {act}" if act else "")


LEAKY = "leakyrelu(0.2)"


def _fmt(values: tuple[int | float, ...]) -> str:
    return ",".join(f"{float(v):g}" for v in values)


def _signature(layer: NcnnLayer) -> str:
    kind = layer.kind
    if kind == "Convolution":
        weight = layer.weights["weight"]
        cout, cin, kh, kw = (int(d) for d in weight.shape)
        extra = ""
        stride = (layer.int_param(3, 1), layer.int_param(13, layer.int_param(3, 1)))
        dilation = (layer.int_param(2, 1), layer.int_param(12, layer.int_param(2, 1)))
        left = layer.int_param(4, 0)
        top = layer.int_param(14, left)
        pads = (left, top, layer.int_param(15, left), layer.int_param(16, top))
        if stride != (1, 1):
            extra += f" stride {stride}"
        if dilation != (1, 1):
            extra += f" dilation {dilation}"
        if pads != (kw // 2, kh // 2, kw // 2, kh // 2):
            extra += f" pad {pads}"
        if "bias" not in layer.weights:
            extra += " no-bias"
        if kh != kw:
            extra += f" kernel {kh}x{kw}"
        act = _ACTIVATIONS.get(layer.int_param(9, 0), f"activation {layer.int_param(9, 0)}")
        act_params = layer.param(10, ())
        if act and isinstance(act_params, tuple) and act_params:
            act += f"({_fmt(act_params)})"
        return conv_signature(cin, cout, act, kw, extra)
    if kind == "PReLU":
        return f"PReLU {int(layer.weights['weight'].numel())}"
    if kind == "Eltwise":
        coeffs = layer.param(1, ())
        op = _ELTWISE_OPS.get(layer.int_param(0, 1), "?")
        return f"Eltwise {op}" + (
            f" {_fmt(coeffs)}" if isinstance(coeffs, tuple) and coeffs else ""
        )
    if kind == "BinaryOp":
        op = _BINARY_OPS.get(layer.int_param(0, 0), "?")
        return f"BinaryOp {op}" + (" scalar" if layer.int_param(1, 0) else "")
    if kind == "Interp":
        mode = _RESIZE.get(layer.int_param(0, 0), "?")
        if layer.int_param(3, 0) or layer.int_param(4, 0) or layer.int_param(5, 0):
            return f"Interp {mode} to a fixed size"
        hs, ws = float(layer.param(1, 1.0)), float(layer.param(2, 1.0))  # type: ignore[arg-type]
        corners = " align_corners" if layer.int_param(6, 0) else ""
        return f"Interp {mode} x{hs:g}" + (f",{ws:g}" if ws != hs else "") + corners
    if kind == "PixelShuffle":
        order = layer.int_param(1, 0)
        return f"PixelShuffle {layer.int_param(0, 1)}" + (f" mode {order}" if order else "")
    if kind == "Concat":
        axis = layer.int_param(0, 0)
        return "Concat" + (f" axis {axis}" if axis else "")
    if kind == "ReLU":
        slope = float(layer.param(0, 0.0))  # type: ignore[arg-type]
        return f"ReLU({slope:g})"
    return kind


def graph_steps(graph: NcnnGraph) -> list[Step]:
    """Signatures of the layers that compute something (a separate ReLU folded into its conv)."""
    steps: list[Step] = []
    for layer in graph.layers:
        if layer.kind in ("Input", "Split"):
            continue
        sig = _signature(layer)
        prev = steps[-1] if steps else None
        if (
            layer.kind == "ReLU"
            and prev is not None
            and prev.layer is not None
            and prev.layer.kind == "Convolution"
            and " + " not in prev.signature
        ):
            slope = float(layer.param(0, 0.0))  # type: ignore[arg-type]
            act = f"leakyrelu({slope:g})" if slope else "relu"
            steps[-1] = Step(f"{prev.signature} + {act}", prev.layer)
            continue
        steps.append(Step(sig, layer))
    return steps


# --------------------------------------------------------------------------- matchers


@dataclass(frozen=True)
class Match:
    """A graph recognised as an architecture: canonical tensors and metadata."""

    architecture: str
    state: StateDict
    metadata: dict[str, str]


class Mismatch(Exception):
    """Why a graph is not a given architecture (the first layer that did not fit)."""


def compare(steps: list[Step], expected: list[str]) -> None:
    for i, want in enumerate(expected):
        if i >= len(steps):
            raise Mismatch(f"the graph ends after {len(steps)} layers where '{want}' was expected")
        if steps[i].signature != want:
            layer = steps[i].layer
            where = layer.where() if layer else f"step {i}"
            raise Mismatch(f"{where} is '{steps[i].signature}', expected '{want}'")
    if len(steps) > len(expected):
        layer = steps[len(expected)].layer
        where = layer.where() if layer else ""
        raise Mismatch(f"extra layers from {where} on ('{steps[len(expected)].signature}')")


def convolutions(steps: list[Step]) -> list[NcnnLayer]:
    return [s.layer for s in steps if s.layer is not None and s.layer.kind == "Convolution"]


def conv_tensors(name: str, layer: NcnnLayer) -> StateDict:
    return {f"{name}.{key}": value for key, value in layer.weights.items()}
