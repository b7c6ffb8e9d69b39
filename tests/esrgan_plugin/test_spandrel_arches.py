"""Architectures the project does not build itself, loaded through spandrel (issue 19).

Each family (SPAN, SwinIR, DAT, OmniSR, RealPLKSR, and Compact x1 through our own descriptor)
is a tiny random network built with spandrel's classes and saved as a file: our loader, our
upscaler and our engines must give exactly what spandrel's own call gives; tiles must equal the
whole image for the convolutional ones; the descriptor must carry spandrel's needs and abilities.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from spandrel_nets import CONVOLUTIONAL, NETS, build, reference, save

from esrgan_plugin.arch.spandrel import UNBOUNDED_RADIUS, SpandrelNetwork
from esrgan_plugin.engines.registry import choose_engine
from esrgan_plugin.errors import CheckpointError, InferenceError, InterpolationError
from esrgan_plugin.inference import Upscaler
from esrgan_plugin.interpolate import interpolate_models
from esrgan_plugin.models.loading import load_model, save_model
from esrgan_plugin.options import UpscaleOptions
from esrgan_plugin.tiles.halo import HALO_BOUND, model_halo, probe_photos

FP32 = {"device": "cpu", "precision": "fp32", "engine": "pytorch"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spandrel")
    return {name: save(build(name), root / f"{name}{NETS[name][3]}") for name in NETS}


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def _spandrel_output(name: str, image: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    return reference(build(name), x)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("name", list(NETS))
def test_loads_and_runs_exactly_as_spandrel_does(files: dict[str, Path], name: str) -> None:
    model = load_model(files[name])
    _, architecture, scale, _ = NETS[name]
    assert (model.architecture, model.scale) == (architecture, scale)
    assert model.layout == ("compact" if name == "compact-x1" else "spandrel")
    image = _image(20, 18)  # odd-shaped, and at least each family's minimum side
    ours = Upscaler(model, UpscaleOptions(tile=0, **FP32)).upscale(image)
    expected = _spandrel_output(name, image)
    assert ours.shape == expected.shape == (20 * scale, 18 * scale, 3)
    assert np.abs(ours - expected).max() <= 1e-5


@pytest.mark.parametrize("name", ["swinir", "dat"])
def test_an_input_below_the_minimum_is_padded_and_cropped_back(
    files: dict[str, Path], name: str
) -> None:
    model = load_model(files[name])
    assert model.needs.min_size == 16
    image = _image(12, 10, seed=1)  # padded to 16 x 16 by reflection, as spandrel pads
    ours = Upscaler(model, UpscaleOptions(tile=0, **FP32)).upscale(image)
    np.testing.assert_allclose(ours, _spandrel_output(name, image), atol=1e-5, rtol=0)


def test_the_descriptor_carries_what_spandrel_says(files: dict[str, Path]) -> None:
    swinir = load_model(files["swinir"])
    assert swinir.needs.tiling_discouraged and swinir.needs.receptive_radius == UNBOUNDED_RADIUS
    assert swinir.descriptor.precisions == {"fp32", "bf16"}  # spandrel: no fp16 for SwinIR
    assert not swinir.descriptor.exportable and swinir.descriptor.licence == ""
    span = load_model(files["span"])
    assert span.descriptor.precisions == {"fp32", "bf16", "fp16"}
    assert not span.needs.tiling_discouraged and 0 < span.needs.receptive_radius < 100
    # RealPLKSR normalises with GroupNorm (statistics over the whole image): no bound
    assert load_model(files["realplksr"]).needs.receptive_radius == UNBOUNDED_RADIUS
    info = span.describe()
    assert info["through"].startswith("spandrel ") and info["parameters"] == sum(
        p.numel() for p in build("span").parameters()
    )
    assert load_model(files["omnisr"]).describe()["receptive_radius"] == "unbounded"


@pytest.mark.parametrize("name", CONVOLUTIONAL)
def test_tiles_equal_the_whole_image_for_convolutional_networks(
    files: dict[str, Path], name: str
) -> None:
    model = load_model(files[name])
    radius = model.needs.receptive_radius  # the structural bound: tiles are exact
    side = 2 * max(16, radius + 8)  # 2 x 2 tiles, none of which sees the whole image
    image = _image(side + 4, side, seed=2)
    whole = Upscaler(model, UpscaleOptions(tile=0, **FP32)).upscale(image)
    options = UpscaleOptions(tile=side // 2, halo=radius, **FP32)
    tiled = Upscaler(model, options).upscale(image)
    assert np.abs(tiled - whole).max() <= 1e-5
    # the measured halo (the default) keeps tiles within the probe's bound on a photo
    halo = model_halo(model.module).halo
    assert halo <= radius + 8
    photo = probe_photos(64)[1][0].permute(1, 2, 0).numpy()
    whole = Upscaler(model, UpscaleOptions(tile=0, **FP32)).upscale(photo)
    tiled = Upscaler(model, UpscaleOptions(tile=32, halo=halo, **FP32)).upscale(photo)
    assert np.abs(tiled - whole).max() <= 2 * HALO_BOUND


def test_a_file_nobody_recognises_keeps_the_one_line_unknown_layout_error(tmp_path: Path) -> None:
    path = tmp_path / "mystery.pth"
    torch.save({"encoder.weight": torch.zeros(4, 3, 3, 3), "decoder.bias": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: unknown model")
    assert "unknown key layout (first keys: encoder.weight, decoder.bias)" in message
    assert "known layouts: old (" in message and "spandrel" in message


def test_spandrel_is_given_tensors_never_the_file(tmp_path: Path) -> None:
    """A pickle that is not weights-only is refused by our reader before spandrel sees it."""
    import pickle

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("unpickled!",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv_1.sk.weight": Payload()}, f)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(path)


def test_interpolation_of_two_models_of_one_architecture(tmp_path: Path) -> None:
    a = load_model(save(build("span", seed=1), tmp_path / "a.pth"))
    b = load_model(save(build("span", seed=2), tmp_path / "b.pth"))
    mixed = interpolate_models(a, b, 0.25)
    for key, value in mixed.module.state_dict().items():
        expected = torch.lerp(a.module.state_dict()[key], b.module.state_dict()[key], 0.25)
        torch.testing.assert_close(value, expected)
    # written as spandrel's own keys: it loads back (through spandrel) to the same network
    out = save_model(tmp_path / "mixed.safetensors", mixed.module, mixed.metadata)
    again = load_model(out)
    assert isinstance(again.module, SpandrelNetwork) and again.config == mixed.config
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(again.module(x), mixed.module(x))
    other = load_model(save(build("swinir"), tmp_path / "c.safetensors"))
    with pytest.raises(InterpolationError, match="differ in architecture"):
        interpolate_models(a, other, 0.5)


def test_engines_refuse_what_they_cannot_run(files: dict[str, Path]) -> None:
    span = load_model(files["span"]).descriptor
    cpu = torch.device("cpu")
    with pytest.raises(InferenceError, match="engine openvino cannot run SPAN .*ONNX export"):
        choose_engine("openvino", span, cpu, "fp32")
    assert choose_engine("auto", span, cpu, "fp32", 50_000_000).name == "pytorch"
    swinir = load_model(files["swinir"]).descriptor
    with pytest.raises(InferenceError, match=r"cannot run SwinIR in fp16 \(SwinIR does not"):
        choose_engine("pytorch", swinir, torch.device("cuda"), "fp16")
    assert choose_engine("pytorch", swinir, cpu, "bf16").name == "pytorch"


def test_a_tiling_discouraged_network_runs_whole_and_notes_tiles(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import esrgan_plugin.inference as inference
    import esrgan_plugin.tiled_upscaler as tiled_upscaler

    inference.note_tiles_discouraged.cache_clear()
    model = load_model(files["swinir"])
    upscaler = Upscaler(model, UpscaleOptions(halo=8, **FP32))
    with caplog.at_level(logging.WARNING, logger="esrgan_plugin.tiled_upscaler"):
        assert upscaler._initial_tile(200, 180) == 0  # fits: whole, whatever the cost curve
        monkeypatch.setattr(tiled_upscaler, "memory_budget_pixels", lambda *args: 64 * 64)
        tile = upscaler._initial_tile(200, 180)
    assert tile > 0
    notes = [r.getMessage() for r in caplog.records if "advises against tiles" in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith("note: SwinIR advises against tiles")
    assert "does not fit in memory whole" in notes[0]


def test_onnx_export_where_the_network_exports_and_one_line_where_not(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxscript", reason="the onnx extra")
    pytest.importorskip("onnxruntime", reason="the dev extra")
    from esrgan_plugin.arch.tracing import rewrites_own_weights
    from esrgan_plugin.cli import main

    x = torch.rand(1, 3, 16, 16)
    assert rewrites_own_weights(load_model(files["span"]).module, x)  # SPAN's Conv3XC
    assert not rewrites_own_weights(load_model(files["realplksr"]).module, x)
    out = tmp_path / "span.onnx"
    assert main(["export", str(files["span"]), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("esrgan: error: SPAN: not exported: the network rewrites its own weights")
    assert len(err.splitlines()) == 1 and not out.exists()
    out = tmp_path / "plksr.onnx"
    assert main(["export", str(files["realplksr"]), "-o", str(out), "--size", "32"]) == 0
    assert out.is_file() and "onnxruntime vs PyTorch" in capsys.readouterr().out
