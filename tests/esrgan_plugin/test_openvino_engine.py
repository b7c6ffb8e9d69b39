"""The OpenVINO engine (``engine: openvino``): parity with the module, int8 as our own engine
quantises, caching of the exported graph, and the paths that use it."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_image, save_tiny, tiny_rrdbnet
from test_compact import tiny_compact

from esrgan_plugin.cache import cache_dir
from esrgan_plugin.cli import main
from esrgan_plugin.device import cpu_info
from esrgan_plugin.engines.calibration import (
    BlockRanges,
    Calibration,
    calibration_for,
    calibration_inputs,
)
from esrgan_plugin.engines.onednn.int8 import Int8DenseBlock, int8_available
from esrgan_plugin.engines.openvino import engine as openvino_engine
from esrgan_plugin.engines.openvino.bias_correction import correct_biases
from esrgan_plugin.engines.openvino.compiled import pad_columns
from esrgan_plugin.engines.openvino.engine import OpenVinoEngine
from esrgan_plugin.engines.openvino.graphs import (
    MAX_FEATURE_STRETCH,
    MAX_INPUT_GAIN,
    ColumnMasked,
    FakeQuantDenseBlock,
    FakeQuantRRDBNet,
    channel_stretch,
    feature_stretch,
    gained_range,
    input_gain,
    stretched_range,
    summed_rrdbnet,
)
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from pipelines.io.images import read_image, write_image

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed"
)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double().clamp(0, 1) - b.double().clamp(0, 1)) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def test_compact_fp32_matches_the_module() -> None:
    net = tiny_compact()
    x = torch.rand(1, 3, 20, 23)
    with torch.no_grad():
        expected = net(x)
    actual = OpenVinoEngine(net, "fp32", threads=1)(x)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= 1e-4


def test_the_summed_graph_computes_the_network_without_concatenations() -> None:
    """The float graphs' dense blocks (one conv per input part, summed) are the network's, and
    the exported trunk has no Concat node for OpenVINO to copy through."""
    net = tiny_rrdbnet(nf=16, nb=2, gc=8)
    x = torch.rand(1, 3, 20, 23)
    with torch.no_grad():
        expected, actual = net(x), summed_rrdbnet(net)(x)
    assert (actual - expected).abs().max().item() <= 1e-5
    engine = OpenVinoEngine(net, "fp32", threads=1)
    assert (engine(x) - expected).abs().max().item() <= 1e-4
    maps = [  # the ops with NCHW outputs (shape arithmetic also concatenates, 1-d)
        op.get_type_name()
        for op in engine.network.trunk.model.get_ops()
        if op.get_output_size() and op.get_output_partial_shape(0).rank.get_length() == 4
    ]
    assert "Convolution" in maps and "Concat" not in maps


@pytest.mark.skipif(not int8_available(), reason="no oneDNN int8 kernels in this PyTorch")
def test_fake_quant_dense_block_computes_what_our_int8_block_computes() -> None:
    """The graph's dense block (fake quantisation) on the features' shared range against our int8
    engine's (int8 kernels)."""
    net = tiny_rrdbnet(nf=16, nb=1, gc=8)
    calibration = calibration_for(net)
    block = net.body[0].rdb1
    x = net.conv_first(torch.rand(1, 3, 20, 20)).detach()
    with torch.no_grad():
        exact = block(x)
        shared = _shared(calibration.ranges[0])  # oneDNN's
        graph = FakeQuantDenseBlock(block, shared)(x)
    ours = Int8DenseBlock(block, calibration.ranges[0])(x)
    quantisation_error = (ours - exact).abs().max().item()
    assert quantisation_error > 1e-5
    assert (graph - ours).abs().max().item() < 0.1 * quantisation_error


def test_openvino_int8_runs_the_fake_quant_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """With f32 around the int8 convs, OpenVINO's int8 output is the fake-quantised graph's
    PyTorch output to within a tenth of the quantisation error (dense blocks and tail), on the
    photo crops' calibration with the features on one range. (On other ranges OpenVINO's
    arithmetic departs from the fake-quantised graph's by about as much as either departs from
    fp32, measured on RealESRGAN_x4plus, so the engine's figures against fp32 are measured on
    its own output: ``bench/eval_int8.py``.)"""
    monkeypatch.setitem(openvino_engine.PRECISION_HINTS, "int8", "f32")
    monkeypatch.setattr(openvino_engine, "INT8_KEEP_LAST", 3)  # of the tiny model's 6
    monkeypatch.setattr(openvino_engine, "INT8_QUANTIZE_TAIL", True)
    net = tiny_rrdbnet(nf=16, nb=2, gc=8)
    x = torch.rand(1, 3, 24, 24)
    calibration = _shared_features(calibration_for(net))
    monkeypatch.setattr(openvino_engine, "calibration_for", lambda *_a, **_k: calibration)
    graph = FakeQuantRRDBNet(net, calibration, keep_last=3)
    correct_biases(graph, calibration_inputs(net, with_lr_crops=True))  # as the engine does
    with torch.no_grad():
        fp32, reference = net(x), graph(x)
    theirs = OpenVinoEngine(net, "int8", threads=1)(x)
    quantisation_error = (reference - fp32).abs().max().item()
    assert quantisation_error > 1e-4
    if {"avx512_vnni", "avx_vnni"} & cpu_info().flags:
        assert (theirs - reference).abs().max().item() < 0.1 * quantisation_error
    else:  # AVX2 int8 kernels: the graph's function, with their own rounding (3x, measured)
        assert 0 < (theirs - fp32).abs().max().item() < 5 * quantisation_error


def _shared_features(calibration: Calibration) -> Calibration:
    """``calibration`` without per-feature or per-channel ranges: the features on one shared
    range, the input unscaled."""
    ranges = tuple(_shared(r) for r in calibration.ranges)
    return dataclasses.replace(calibration, ranges=ranges)


def _shared(ranges: BlockRanges) -> BlockRanges:
    """A block's ranges without per-feature or per-channel ones (oneDNN's int8 block)."""
    return dataclasses.replace(ranges, parts=(), channels=())


def test_stretched_features_fit_one_range_and_keep_the_function() -> None:
    """Each feature, scaled by its stretch, lies inside the one range, and each input channel,
    scaled by its gain, inside the input's range; stretch and gain (at most MAX_FEATURE_STRETCH,
    MAX_INPUT_GAIN) are folded into the convs, so the block's function is unchanged: with
    its rounding switched off (activations and weights) the stretched block gives the original
    block's output; with it on, another rounding than the unstretched block's."""
    net = tiny_rrdbnet(nf=16, nb=1, gc=8)
    ranges = calibration_for(net, with_lr_crops=True).ranges[0]
    stretch = channel_stretch(ranges, 8)
    one = stretched_range(ranges, feature_stretch(ranges))
    assert feature_stretch(dataclasses.replace(ranges, parts=())) == [1.0] * 4
    expected = torch.tensor([a for a in feature_stretch(ranges) for _ in range(8)])
    assert torch.equal(stretch, expected)  # each feature's factor on its channels
    assert stretch.max() > 1.0 and stretch.min() >= 1.0 and stretch.max() <= MAX_FEATURE_STRETCH
    for a, part in zip(feature_stretch(ranges), ranges.parts, strict=True):
        assert one.low <= a * part.low and a * part.high <= one.high * (1 + 1e-6)
    gain = input_gain(ranges, 16)
    assert input_gain(dataclasses.replace(ranges, channels=()), 16).eq(1).all()
    assert gain.max() > 1.0 and gain.min() >= 1.0 and gain.max() <= MAX_INPUT_GAIN
    scaled = gained_range(ranges, gain)
    for g, channel in zip(gain.tolist(), ranges.channels, strict=True):
        assert scaled.low <= g * channel.low and g * channel.high <= scaled.high * (1 + 1e-6)
    block = net.body[0].rdb1
    x = net.conv_first(torch.rand(1, 3, 20, 20)).detach()
    with torch.no_grad():
        shared = FakeQuantDenseBlock(block, _shared(ranges))(x)
        stretched = FakeQuantDenseBlock(block, ranges)(x)
    assert (stretched - shared).abs().max().item() > 1e-5  # other rounding
    graph = FakeQuantDenseBlock(block, ranges)
    graph.quantize_input = lambda value: value * gain.view(1, -1, 1, 1)  # type: ignore[method-assign]  # no rounding
    graph.quantize_features = lambda value: value  # type: ignore[method-assign]
    for convs in (graph.from_x, graph.from_features):
        for conv in convs:  # float weights
            conv.forward = functools.partial(_float_conv, conv)  # type: ignore[method-assign]
    with torch.no_grad():
        assert torch.allclose(graph(x), block(x), atol=1e-5)


def _float_conv(conv: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1)


def test_the_exported_graph_is_cached_and_a_corrupt_entry_rebuilt(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    net = tiny_rrdbnet(nf=8, nb=1, gc=4)
    x = torch.rand(1, 3, 16, 16)
    first = OpenVinoEngine(net, "fp32", threads=1)(x)
    entries = list((cache_dir() / "openvino").glob("fp32-*.onnx"))
    assert entries

    def no_export(*args: object) -> None:
        raise AssertionError("exported again although cached")

    with monkeypatch.context() as patch:
        patch.setattr(OpenVinoEngine, "_export", no_export)
        assert torch.equal(OpenVinoEngine(net, "fp32", threads=1)(x), first)
    for entry in entries:
        entry.write_bytes(b"not an onnx graph")
    again = OpenVinoEngine(net, "fp32", threads=1)(x)
    assert torch.equal(again, first)
    assert "unreadable" in caplog.text


def test_the_upscaler_tiles_seamlessly_with_it() -> None:
    net = tiny_rrdbnet()
    image = random_image(70, 50)
    fp32 = {"precision": "fp32"}  # auto may measure a different precision for each engine
    whole = Upscaler(net, UpscaleOptions(engine="openvino", tile=0, **fp32)).upscale(image)
    tiled = Upscaler(net, UpscaleOptions(engine="openvino", tile=32, halo=16, **fp32))
    reference = Upscaler(net, UpscaleOptions(engine="pytorch", tile=0, **fp32)).upscale(image)
    assert np.abs(whole.astype(int) - reference).max() <= 1
    assert np.abs(tiled.upscale(image).astype(int) - whole).max() <= 1


def test_cli_engine_flag(tmp_path: Path) -> None:
    model = save_tiny(tmp_path / "tiny.safetensors")
    src = write_image(tmp_path / "in.png", random_image(30, 26))
    out = tmp_path / "out.png"
    args = ["upscale", str(src), "-o", str(out), "--model", str(model), "--engine", "openvino"]
    assert main(args) == 0
    assert read_image(out).shape == (120, 104, 3)


def test_importing_the_engine_module_does_not_import_openvino() -> None:
    """Only building an engine loads OpenVINO (the plugin imports fine without the extra)."""
    code = (
        "import sys, esrgan_plugin.engines.openvino.engine, esrgan_plugin.inference\n"
        "assert 'openvino' not in sys.modules, 'openvino imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("scale", [2, 4])
def test_the_tail_runs_in_row_strips_with_the_same_output(
    scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trunk and tail are two graphs; the tail on 3-row strips still equals the module."""
    from esrgan_plugin.arch import strips

    monkeypatch.setattr(strips, "MIN_STRIP_ROWS", 3)
    monkeypatch.setattr(strips, "TAIL_STRIP_ELEMENTS", 1)
    net = tiny_rrdbnet(scale=scale, nf=8, nb=1, gc=4)
    x = torch.rand(1, 3, 26, 19)
    with torch.no_grad():
        expected = net(x)
    engine = OpenVinoEngine(net, "fp32", threads=1)
    assert engine.tail is not None
    actual = engine(x)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_column_masked_graphs_give_the_unpadded_output_on_zero_padded_widths(scale: int) -> None:
    """The bf16/int8 graphs take a width zero-padded to a multiple of 16 trunk columns and a mask
    that zeroes every map a conv reads on the padding: the image's columns come out as the
    unpadded network's (float: to rounding; fake-quantised: the same quantised values)."""
    net = tiny_rrdbnet(scale=scale, nf=8, nb=2, gc=4)
    factor = net.config.unshuffle_factor
    x = torch.rand(1, 3, 6 * factor, 13 * factor)
    padded, mask = pad_columns(x.numpy(), factor, 16)
    assert padded.shape[-1] == 16 * factor and mask.shape == (1, 1, 1, 16)
    assert mask.sum() == 13 and not padded[..., 13 * factor :].any()
    fake_quant = FakeQuantRRDBNet(net, calibration_for(net), keep_last=1)
    for graph in (summed_rrdbnet(net), fake_quant):
        masked = ColumnMasked(graph)
        m = torch.from_numpy(mask)
        with torch.no_grad():
            expected = graph.tail(graph.trunk(x))
            actual = masked.tail(masked.trunk(torch.from_numpy(padded), m), m)
        assert actual.shape[-1] == padded.shape[-1] * net.scale
        off = (actual[..., : expected.shape[-1]] - expected).abs() > 1e-5
        if graph is fake_quant:  # a sum in another order may round one value to another step
            assert off.float().mean().item() < 0.01
        else:
            assert not off.any()
        unmasked = graph.tail(graph.trunk(torch.from_numpy(padded)))[..., : expected.shape[-1]]
        assert (unmasked - expected).abs().max().item() > 1e-3  # the mask is what keeps it exact


@pytest.mark.parametrize("scale", [2, 4])
def test_the_engine_pads_widths_for_masked_graphs_with_the_same_output(
    scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's padded, masked path (bf16 and int8 on AMX CPUs) run in fp32, where it must
    equal the module: odd widths, the unshuffle's own padding, the tail in row strips."""
    from esrgan_plugin.arch import strips

    monkeypatch.setattr(strips, "MIN_STRIP_ROWS", 3)
    monkeypatch.setattr(strips, "TAIL_STRIP_ELEMENTS", 1)
    monkeypatch.setattr(openvino_engine, "column_multiple", lambda precision: 16)
    net = tiny_rrdbnet(scale=scale, nf=8, nb=1, gc=4)
    engine = OpenVinoEngine(net, "fp32", threads=1)
    network = engine.network
    assert network.masked is not None and network.column_multiple == 16
    masked_trunk = network.masked[0]
    assert len(masked_trunk.model.inputs) == 2  # the image and the column mask
    assert len(network.trunk.model.inputs) == 1
    factor = net.config.unshuffle_factor
    for width in (16 * factor, 19, 37):  # a multiple of 16 trunk columns runs the plain graphs
        x = torch.rand(1, 3, 11, width)
        with torch.no_grad():
            expected = net(x)
        actual = engine(x)
        assert actual.shape == expected.shape
        assert (actual - expected).abs().max().item() <= 1e-4
        assert (masked_trunk._request is not None) == (width != 16 * factor)
