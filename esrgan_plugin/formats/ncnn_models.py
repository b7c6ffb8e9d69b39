"""Recognising ESRGAN-family networks in ncnn graphs: canonical tensors from ``X.param`` + ``X.bin``.

Every registered architecture with an ncnn matcher is tried in turn; a graph that fits none is
an error naming, for each, the first layer that did not fit.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from esrgan_plugin.arch.registry import ARCHITECTURES
from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.formats.ncnn import NcnnGraph, read_ncnn
from esrgan_plugin.formats.ncnn_exec import check_wiring
from esrgan_plugin.formats.ncnn_match import Match, Mismatch, StateDict, graph_steps

Builder = Callable[[StateDict, dict[str, str], str], nn.Module]
"""(canonical tensors, metadata, source) -> the loaded network (the loader's strict build)."""


def match_graph(graph: NcnnGraph) -> Match:
    """The architecture the graph is, or an error saying why it is none of them."""
    steps = graph_steps(graph)
    reasons = []
    for arch in ARCHITECTURES:
        if arch.match_ncnn is None:
            continue
        try:
            return arch.match_ncnn(steps)  # type: ignore[no-any-return]
        except Mismatch as why:
            reasons.append(f"not {arch.name}: {why}")
    raise CheckpointError(
        f"{graph.param_path}: the ncnn graph is not an ESRGAN-family network ({'; '.join(reasons)})"
    )


def read_ncnn_state_dict(path: str, build: Builder) -> tuple[StateDict, dict[str, str]]:
    """Canonical tensors and metadata of the network in ``X.param`` + ``X.bin``.

    The network is recognised from its layer sequence, built with ``build`` and run beside the
    graph as wired on a small input: both must agree, so a graph with the right layers in
    another order of connections is refused.
    """
    graph = read_ncnn(path)
    match = match_graph(graph)
    metadata = {
        "source_format": "ncnn",
        "source_architecture": match.architecture,
        "ncnn_param": graph.param_path.name,
        "ncnn_storage": ",".join(graph.storage),
        **match.metadata,
    }
    module = build(match.state, metadata, str(graph.param_path))
    check_wiring(graph, module, match.architecture)
    return match.state, metadata
