"""bench/peers.py: the onnxruntime / OpenVINO peers run the same network as PyTorch."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from helpers import random_image, tiny_rrdbnet

from esrgan_plugin.models.loading import build_from_state_dict

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_peers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_peers", BENCH / "peers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module
    spec.loader.exec_module(module)
    return module


def test_peers_match_pytorch_and_int8_is_quantised(tmp_path: Path) -> None:
    peers = load_peers()
    model = build_from_state_dict(tiny_rrdbnet(4).state_dict())
    image = random_image(40, 40)
    calibration = peers.calibration_crops(image, size=16, count=3)
    assert [c.shape for c in calibration] == [(1, 3, 16, 16)] * 3
    assert all(c.min() >= 0.0 and c.max() <= 1.0 for c in calibration)
    x = peers.calibration_crops(image, size=12, count=1, seed=9)[0]
    with torch.inference_mode():
        reference = model.module(torch.from_numpy(x)).numpy()
    found, skipped = peers.prepare_peers(model, x.shape, threads=1, calibration=calibration)
    kinds = {p.kind for p in found}
    assert {"ort-fp32", "ort-int8"} <= kinds
    if importlib.util.find_spec("openvino") is None:
        assert any("OpenVINO" in s and "openvino is not installed" in s for s in skipped)
    else:
        assert {"ov-f32", "ov-bf16", "ov-int8"} <= kinds
    for peer in found:
        timing = peers.time_peer(peer, x, repeats=2)
        assert len(timing.seconds) == 2 and timing.median > 0
        assert timing.output.shape == reference.shape
        error = float(np.abs(timing.output - reference).max())
        if peer.kind.endswith("fp32") or peer.kind == "ov-f32":
            assert error <= 1e-4, peer.name
        else:  # int8 and bf16 really run at lower precision, yet close
            assert 0 < error < 0.1, (peer.name, error)


def test_int8_graph_quantises_convolutions_only_per_channel(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    peers = load_peers()
    model = build_from_state_dict(tiny_rrdbnet(4).state_dict())
    fp32 = peers.write_graph(peers.onnx_fp32_graph(model), tmp_path / "fp32.onnx")
    crops = peers.calibration_crops(random_image(20, 20), size=8, count=2)
    quantised = onnx.load(str(peers.quantize_int8(fp32, crops, tmp_path)))
    nodes = quantised.graph.node
    initializers = {i.name: numpy_helper.to_array(i) for i in quantised.graph.initializer}
    producer = {out: n for n in nodes for out in n.output}
    convs = [n for n in nodes if n.op_type == "Conv"]
    assert len(convs) == 1 + 5 * 3 + 1 + 2 + 2  # conv_first, 1 RRDB, body, 2 up, hr, last
    for conv in convs:
        activation, weight = producer[conv.input[0]], producer[conv.input[1]]
        assert activation.op_type == weight.op_type == "DequantizeLinear"
        weight_scale = initializers[weight.input[1]]
        out_channels = initializers[weight.input[0]].shape[0]
        assert weight_scale.shape == (out_channels,)  # per-channel weights
        assert initializers[weight.input[0]].dtype == np.int8
    consumers: dict[str, set[str]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, set()).add(n.op_type)
    for quantize in (n for n in nodes if n.op_type == "QuantizeLinear"):
        source = quantize.input[0]  # quantised only where a conv reads or writes it
        dequantized = next(n for n in nodes if n.input[0] == quantize.output[0]).output[0]
        writer = producer[source].op_type if source in producer else "graph input"
        assert "Conv" in consumers.get(dequantized, set()) or writer == "Conv", source


def test_no_calibration_skips_int8() -> None:
    peers = load_peers()
    model = tiny_rrdbnet(4)
    found, skipped = peers.prepare_peers(model, (1, 3, 8, 8), 1, None, kinds=["ort-int8"])
    assert found == [] and skipped == [
        "onnxruntime int8 (static QDQ, conv-only): no calibration crops given"
    ]
    with pytest.raises(ValueError, match="unknown peer kinds"):
        peers.prepare_peers(model, (1, 3, 8, 8), 1, None, kinds=["tensorrt"])


def test_cache_dir_keeps_graphs_keyed_by_weights_and_calibration(tmp_path: Path) -> None:
    peers = load_peers()
    model = tiny_rrdbnet(4)
    crops = peers.calibration_crops(random_image(20, 20), size=8, count=2)
    kinds = ["ort-fp32", "ort-int8"]
    first, _ = peers.prepare_peers(model, (1, 3, 8, 8), 1, crops, kinds, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and {f.rsplit("-", 1)[1] for f in files} == {"fp32.onnx", "int8.onnx"}
    stamps = [p.stat().st_mtime_ns for p in sorted(tmp_path.iterdir())]
    again, _ = peers.prepare_peers(model, (1, 3, 8, 8), 1, crops, kinds, cache_dir=tmp_path)
    assert [p.stat().st_mtime_ns for p in sorted(tmp_path.iterdir())] == stamps  # reused
    x = crops[0]
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.run(x), b.run(x))
    other = peers.calibration_crops(random_image(20, 20), size=8, count=2, seed=1)
    peers.prepare_peers(model, (1, 3, 8, 8), 1, other, ["ort-int8"], cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3  # new calibration, new int8 graph
    with torch.no_grad():
        model.conv_last.bias.add_(1.0)
    assert peers.model_key(model) not in {f.split("-")[0] for f in files}
