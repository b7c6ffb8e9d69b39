"""Recognising ESRGAN-family networks in ncnn graphs and renaming their weights canonically.

Each architecture is matched by its sequence of layer signatures (kind, channel counts, kernel,
activation, coefficients; ``Split`` layers, which only fan blobs out, are skipped): the
hyperparameters are read off the first layers, the full sequence that configuration must
have is generated, and the two are compared layer by layer. A graph that fits neither
architecture is an error naming, for each, the first layer that did not fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.formats.ncnn import NcnnGraph, NcnnLayer, read_ncnn
from esrgan_plugin.formats.ncnn_exec import check_wiring

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


def _compare(steps: list[Step], expected: list[str]) -> None:
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


def _convs(steps: list[Step]) -> list[NcnnLayer]:
    return [s.layer for s in steps if s.layer is not None and s.layer.kind == "Convolution"]


def _conv_tensors(name: str, layer: NcnnLayer) -> StateDict:
    return {f"{name}.{key}": value for key, value in layer.weights.items()}


def match_rrdbnet(steps: list[Step]) -> Match:
    """conv_first -> nb RRDBs -> conv_body + skip -> (nearest x2, conv) per up-step -> HR convs."""
    convs = _convs(steps)
    if len(convs) < 4:
        raise Mismatch(f"only {len(convs)} convolutions (RRDBNet has at least 4)")
    cin, nf = int(convs[0].weights["weight"].shape[1]), int(convs[0].weights["weight"].shape[0])
    cout = int(convs[-1].weights["weight"].shape[0])
    num_up = sum(1 for s in steps if s.signature == "Interp nearest x2")
    num_blocks, rem = divmod(len(convs) - 4 - num_up, 15)
    if rem or num_blocks < 0:
        raise Mismatch(
            f"{len(convs)} convolutions with {num_up} up-steps is not 4 + up-steps + 15 per RRDB"
        )
    gc = int(convs[1].weights["weight"].shape[0]) if num_blocks else 32
    expected = list(_rrdbnet_signatures(cin, cout, nf, gc, num_blocks, num_up))
    _compare(steps, expected)
    names = _rrdbnet_conv_names(num_blocks, num_up)
    state: StateDict = {}
    for name, layer in zip(names, convs, strict=True):
        state.update(_conv_tensors(name, layer))
    return Match("RRDBNet", state, {})


def _rrdbnet_signatures(
    cin: int, cout: int, nf: int, gc: int, num_blocks: int, num_up: int
) -> Iterator[str]:
    yield conv_signature(cin, nf)
    for _ in range(num_blocks):
        for _rdb in range(3):
            for j in range(4):
                yield conv_signature(nf + j * gc, gc, LEAKY)
                yield "Concat"
            yield conv_signature(nf + 4 * gc, nf)
            yield "Eltwise sum 0.2,1"
        yield "Eltwise sum 0.2,1"
    yield conv_signature(nf, nf)
    yield "BinaryOp add"
    for _ in range(num_up):
        yield "Interp nearest x2"
        yield conv_signature(nf, nf, LEAKY)
    yield conv_signature(nf, nf, LEAKY)
    yield conv_signature(nf, cout)


def _rrdbnet_conv_names(num_blocks: int, num_up: int) -> list[str]:
    names = ["conv_first"]
    for i in range(num_blocks):
        names += [f"body.{i}.rdb{k}.conv{j}" for k in (1, 2, 3) for j in range(1, 6)]
    names.append("conv_body")
    names += [f"conv_up{u}" for u in range(1, num_up + 1)]
    return [*names, "conv_hr", "conv_last"]


def match_compact(steps: list[Step]) -> Match:
    """SRVGGNetCompact: (conv, PReLU) x (n + 1), conv, pixel-shuffle r, + nearest-upsampled input.

    An optional final bicubic resize (how some packages make x2/x3 from the x4 network) is
    kept as the model's ``output_scale``.
    """
    convs = _convs(steps)
    shuffles = [s.layer for s in steps if s.layer is not None and s.layer.kind == "PixelShuffle"]
    if len(convs) < 2 or len(shuffles) != 1:
        raise Mismatch(
            f"{len(convs)} convolutions and {len(shuffles)} pixel-shuffles "
            "(SRVGGNetCompact has at least 2 and exactly 1)"
        )
    upscale = shuffles[0].int_param(0, 1)
    first, last = convs[0].weights["weight"], convs[-1].weights["weight"]
    cin, nf = int(first.shape[1]), int(first.shape[0])
    cout, rem = divmod(int(last.shape[0]), upscale * upscale)
    if rem:
        raise Mismatch(
            f"the last convolution's {int(last.shape[0])} outputs are not c x {upscale}^2"
        )
    num_convs = len(convs) - 2
    expected = [conv_signature(cin, nf), f"PReLU {nf}"]
    for _ in range(num_convs):
        expected += [conv_signature(nf, nf), f"PReLU {nf}"]
    expected += [
        conv_signature(nf, cout * upscale * upscale),
        f"PixelShuffle {upscale}",
        f"Interp nearest x{upscale}",
        "BinaryOp add",
    ]
    metadata: dict[str, str] = {}
    tail = steps[len(expected) :]
    if len(tail) == 1 and tail[0].signature.startswith("Interp bicubic x"):
        factor = float(tail[0].signature.removeprefix("Interp bicubic x"))
        output_scale = upscale * factor
        if abs(output_scale - round(output_scale)) > 1e-6 or round(output_scale) < 1:
            raise Mismatch(f"the final resize x{factor:g} does not give an integer scale")
        expected.append(tail[0].signature)
        metadata["output_scale"] = str(round(output_scale))
    _compare(steps, expected)
    state: StateDict = {}
    prelus = [s.layer for s in steps if s.layer is not None and s.layer.kind == "PReLU"]
    for i, conv in enumerate(convs):
        state.update(_conv_tensors(f"body.{2 * i}", conv))
    for i, prelu in enumerate(prelus):
        state[f"body.{2 * i + 1}.weight"] = prelu.weights["weight"]
    return Match("SRVGGNetCompact", state, metadata)


MATCHERS: tuple[tuple[str, Callable[[list[Step]], Match]], ...] = (
    ("RRDBNet", match_rrdbnet),
    ("SRVGGNetCompact", match_compact),
)


def match_graph(graph: NcnnGraph) -> Match:
    """The architecture the graph is, or an error saying why it is none of them."""
    steps = graph_steps(graph)
    reasons = []
    for name, matcher in MATCHERS:
        try:
            return matcher(steps)
        except Mismatch as why:
            reasons.append(f"not {name}: {why}")
    raise CheckpointError(
        f"{graph.param_path}: the ncnn graph is not an ESRGAN-family network ({'; '.join(reasons)})"
    )


def read_ncnn_state_dict(path: str) -> tuple[StateDict, dict[str, str]]:
    """Canonical tensors and metadata of the network in ``X.param`` + ``X.bin``.

    The network is recognised from its layer sequence, then run beside the graph as wired on a
    small input: both must agree, so a graph with the right layers in another order of
    connections is refused.
    """
    from esrgan_plugin.checkpoint import build_from_state_dict  # checkpoint imports this module

    graph = read_ncnn(path)
    match = match_graph(graph)
    metadata = {
        "source_format": "ncnn",
        "source_architecture": match.architecture,
        "ncnn_param": graph.param_path.name,
        "ncnn_storage": ",".join(graph.storage),
        **match.metadata,
    }
    model = build_from_state_dict(match.state, metadata, source=str(graph.param_path))
    check_wiring(graph, model.module, match.architecture)
    return match.state, metadata
