"""Empirical bias correction of the OpenVINO engine's int8 graph (PyTorch fake quantisation:
no OpenVINO needed)."""

from __future__ import annotations

import copy

import torch
from helpers import tiny_rrdbnet

from esrgan_plugin.arch.rrdbnet import RRDBNet
from esrgan_plugin.engines.calibration import calibrate, calibration_inputs
from esrgan_plugin.engines.openvino.bias_correction import correct_biases
from esrgan_plugin.engines.openvino.graphs import FakeQuantRRDBNet


def _body_mean_error(graph: FakeQuantRRDBNet, net: RRDBNet, x: torch.Tensor) -> float:
    """The largest per-channel mean of the RRDB stack's quantisation error over ``x``."""
    with torch.no_grad():
        feat = net.conv_first(x)
        error = graph.net.body(feat) - net.body(feat)
    return float(error.mean((0, 2, 3)).abs().max())


def test_full_correction_zeroes_the_residual_streams_mean_error_on_the_calibration_crops() -> None:
    """Every block quantised and fully corrected: each conv's mean error is taken off in trunk
    order, so the error of the residual stream has no mean left on the crops it was measured on
    (which also checks that the correction's quantised path is the graph's own)."""
    torch.manual_seed(0)
    net = tiny_rrdbnet(nf=16, nb=2, gc=8)
    images = calibration_inputs(net)  # type: ignore[arg-type]
    x = torch.cat(images)
    graph = FakeQuantRRDBNet(net, calibrate(net, images), keep_last=0)  # type: ignore[arg-type]
    before = _body_mean_error(graph, net, x)
    correct_biases(graph, images, strength=1.0)
    after = _body_mean_error(graph, net, x)
    assert before > 1e-4  # 3.1e-4 measured
    assert after < 1e-5  # float32 rounding (2.6e-7 measured)


def test_the_correction_changes_only_the_quantised_blocks_biases() -> None:
    torch.manual_seed(0)
    net = tiny_rrdbnet(nf=16, nb=2, gc=8)
    images = calibration_inputs(net)  # type: ignore[arg-type]
    graph = FakeQuantRRDBNet(net, calibrate(net, images), keep_last=3)  # type: ignore[arg-type]
    original = copy.deepcopy(graph.state_dict())
    correct_biases(graph, images, strength=0.5)
    changed = {k for k, v in graph.state_dict().items() if not torch.equal(v, original[k])}
    assert changed and all(".from_x." in k and k.endswith(".bias") for k in changed)
    quantised_blocks = {k.split(".from_x.")[0] for k in changed}
    assert len(quantised_blocks) == 3  # the first three of six; the last three stay float


def test_strength_zero_changes_nothing() -> None:
    torch.manual_seed(0)
    net = tiny_rrdbnet(nf=16, nb=2, gc=8)
    images = calibration_inputs(net)  # type: ignore[arg-type]
    calibration = calibrate(net, images)  # type: ignore[arg-type]
    graph = FakeQuantRRDBNet(net, calibration, keep_last=3)  # type: ignore[arg-type]
    original = copy.deepcopy(graph.state_dict())
    correct_biases(graph, images, strength=0.0)
    assert all(torch.equal(v, original[k]) for k, v in graph.state_dict().items())
