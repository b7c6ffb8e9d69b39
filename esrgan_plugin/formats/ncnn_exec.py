"""Run an ncnn graph as written, blob by blob, to check a recognised network's wiring.

The architecture matchers compare layer sequences; this executes the graph's actual blob
connections (which layer feeds which, through ``Split`` fan-outs) for the few layer kinds the
ESRGAN-family graphs use, so that a graph whose layers are right but wired differently is
caught before its weights are trusted. It is a checker, not an inference engine: plain fp32
PyTorch ops, tested against the ``ncnn`` package on real files.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.formats.ncnn import NcnnGraph, NcnnLayer

_RESIZE_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}


def run_graph(graph: NcnnGraph, x: torch.Tensor) -> torch.Tensor:
    """The graph's last blob for an (N, C, H, W) float32 input."""
    blobs: dict[str, torch.Tensor] = {}
    last = x
    for layer in graph.layers:
        if layer.kind == "Input":
            outputs = [x]
        else:
            try:
                inputs = [blobs[name] for name in layer.inputs]
            except KeyError as missing:
                raise CheckpointError(
                    f"{graph.param_path}: {layer.where()} reads blob {missing.args[0]!r}, "
                    "which no earlier layer produces"
                ) from None
            outputs = _run_layer(graph, layer, inputs)
        for name, value in zip(layer.outputs, outputs, strict=True):
            blobs[name] = value
        last = outputs[-1]
    return last


def _run_layer(graph: NcnnGraph, layer: NcnnLayer, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    kind, x = layer.kind, xs[0]
    if kind == "Split":
        return [x] * len(layer.outputs)
    if kind == "Concat":
        return [torch.cat(xs, dim=1)]
    if kind == "Convolution":
        return [_convolution(graph, layer, x)]
    if kind == "PReLU":
        slope = layer.weights["weight"].reshape(1, -1, 1, 1)
        return [torch.where(x >= 0, x, x * slope)]
    if kind == "ReLU":
        return [F.leaky_relu(x, float(layer.param(0, 0.0)))]  # type: ignore[arg-type]
    if kind == "Eltwise":
        return [_eltwise(layer, xs)]
    if kind == "BinaryOp" and layer.int_param(1, 0) == 0 and layer.int_param(0, 0) in (0, 1, 2):
        op = layer.int_param(0, 0)
        return [xs[0] + xs[1] if op == 0 else xs[0] - xs[1] if op == 1 else xs[0] * xs[1]]
    if kind == "Interp" and layer.int_param(0, 0) in _RESIZE_MODES:
        mode = _RESIZE_MODES[layer.int_param(0, 0)]
        hs, ws = float(layer.param(1, 1.0)), float(layer.param(2, 1.0))  # type: ignore[arg-type]
        size = (int(x.shape[-2] * hs), int(x.shape[-1] * ws))
        corners = None if mode == "nearest" else bool(layer.int_param(6, 0))
        return [F.interpolate(x, size=size, mode=mode, align_corners=corners)]
    if kind == "PixelShuffle" and layer.int_param(1, 0) == 0:
        return [F.pixel_shuffle(x, layer.int_param(0, 1))]
    raise CheckpointError(
        f"{graph.param_path}: {layer.where()}: these parameters are not supported "
        f"({' '.join(f'{k}={v}' for k, v in layer.params.items())})"
    )


def _convolution(graph: NcnnGraph, layer: NcnnLayer, x: torch.Tensor) -> torch.Tensor:
    left = layer.int_param(4, 0)
    top = layer.int_param(14, left)
    right, bottom = layer.int_param(15, left), layer.int_param(16, top)
    stride = (layer.int_param(13, layer.int_param(3, 1)), layer.int_param(3, 1))
    dilation = (layer.int_param(12, layer.int_param(2, 1)), layer.int_param(2, 1))
    x = F.pad(x, (left, right, top, bottom))
    out = F.conv2d(x, layer.weights["weight"], layer.weights.get("bias"), stride, 0, dilation)
    activation = layer.int_param(9, 0)
    params = layer.param(10, ())
    if activation == 1:
        return F.relu(out)
    if activation == 2:
        slope = float(params[0]) if isinstance(params, tuple) and params else 0.0
        return F.leaky_relu(out, slope)
    if activation:
        raise CheckpointError(
            f"{graph.param_path}: {layer.where()}: activation type {activation} is not supported"
        )
    return out


def _eltwise(layer: NcnnLayer, xs: list[torch.Tensor]) -> torch.Tensor:
    op = layer.int_param(0, 1)
    if op == 0:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out
    if op == 2:
        return torch.stack(xs).amax(dim=0)
    coeffs = layer.param(1, ())
    weights = list(coeffs) if isinstance(coeffs, tuple) and coeffs else [1.0] * len(xs)
    return sum((float(c) * x for c, x in zip(weights, xs, strict=True)), torch.zeros_like(xs[0]))


def check_wiring(graph: NcnnGraph, module: torch.nn.Module, architecture: str) -> None:
    """The recognised network and the graph as wired must agree on a small random input."""
    in_channels = int(graph_first_conv(graph).weights["weight"].shape[1])
    x = torch.rand(1, in_channels, 12, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = run_graph(graph, x)
        actual = module.eval()(x)
    if actual.shape != expected.shape:
        raise CheckpointError(
            f"{graph.param_path}: the layers fit {architecture} but the graph's wiring does not "
            f"(output {tuple(expected.shape)} where {architecture} gives {tuple(actual.shape)})"
        )
    difference = float((actual - expected).abs().max())
    if difference > 1e-4 * max(1.0, float(expected.abs().max())):  # fp32 noise: about 1e-6
        raise CheckpointError(
            f"{graph.param_path}: the layers fit {architecture} but the graph's wiring does not "
            f"(outputs differ by up to {difference:.3g} on a test input)"
        )


def graph_first_conv(graph: NcnnGraph) -> NcnnLayer:
    return next(layer for layer in graph.layers if layer.kind == "Convolution")
