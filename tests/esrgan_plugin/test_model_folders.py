"""Model folders (issue 19): files named by their stem through --models-dir or
$ESRGAN_MODELS_DIR, listed by `esrgan models`, described by OpenModelDB-style cards."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import random_image, save_tiny
from spandrel_nets import build, save

from esrgan_plugin.arch.spandrel import EXTRA_LICENCE
from esrgan_plugin.cli import main
from esrgan_plugin.engines.upscalers import clear_caches
from esrgan_plugin.models.cards import read_card
from esrgan_plugin.models.catalogue import catalogue
from esrgan_plugin.models.folders import MODELS_DIR_ENV, folder_models
from esrgan_plugin.models.loading import load_model
from esrgan_plugin.models.names import resolve_model_path
from pipelines.io.images import read_image, write_image

CARD = {
    "name": "SPAN tiny",
    "author": ["someone", "someone else"],
    "license": "CC-BY-4.0",
    "tags": ["restoration"],
    "description": "A tiny random SPAN.\nFor tests only.",
    "date": "2026-12-01",
    "architecture": "span",
    "size": None,
    "scale": 4,
    "inputChannels": 3,
    "outputChannels": 3,
    "resources": [],
}


@pytest.fixture(autouse=True)
def _no_folders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(MODELS_DIR_ENV, "")  # none, and restored after the test
    catalogue.cache_clear()
    clear_caches()
    yield
    clear_caches()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    save(build("span"), root / "4x-span-tiny.pth")
    (root / "4x-span-tiny.json").write_text(json.dumps(CARD))
    save(build("compact-x1"), root / "1x-dejpeg.safetensors")
    save(build("compact-x1", seed=5), root / "1x-dejpeg.pth")  # the .safetensors wins
    save_tiny(root / "2x-esrgan.safetensors", scale=2)
    (root / "broken.pth").write_bytes(b"not a checkpoint")
    (root / "half-ncnn.param").write_text("7767517\n")  # no .bin beside it: not a model
    (root / "notes.txt").write_text("not a model")
    return root


def test_every_model_file_is_named_by_its_stem(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(folder))
    found = folder_models()
    assert sorted(found) == ["1x-dejpeg", "2x-esrgan", "4x-span-tiny", "broken"]
    assert found["1x-dejpeg"].path.suffix == ".safetensors"
    assert resolve_model_path("4x-span-tiny") == folder / "4x-span-tiny.pth"
    assert resolve_model_path("4X-SPAN-TINY") == folder / "4x-span-tiny.pth"  # case: a fallback
    model = load_model("4x-span-tiny")
    assert (model.architecture, model.scale) == ("SPAN", 4)
    monkeypatch.delenv(MODELS_DIR_ENV)
    with pytest.raises(Exception, match="is not a model name or a model file"):
        resolve_model_path("4x-span-tiny")


def test_names_close_to_a_folder_file_are_suggested(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(folder))
    with pytest.raises(Exception, match="did you mean 4x-span-tiny"):
        resolve_model_path("4x-span-tiy")


def test_a_card_adds_description_licence_and_author(folder: Path) -> None:
    card = read_card(folder / "4x-span-tiny.pth")
    assert card is not None and card.licence == "CC-BY-4.0" and card.scale == 4
    assert card.author == "someone, someone else" and card.tags == ("restoration",)
    info = load_model(folder / "4x-span-tiny.pth").describe()
    assert info["licence"] == "CC-BY-4.0" and info["description"].startswith("A tiny random SPAN")
    assert "card" in info and "architecture_licence" not in info
    assert read_card(folder / "1x-dejpeg.safetensors") is None


def test_a_malformed_card_is_ignored_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = save_tiny(tmp_path / "m.safetensors")
    card = tmp_path / "m.json"
    card.write_text(json.dumps({"license": 3, "scale": "four", "description": "kept"}))
    with caplog.at_level(logging.WARNING, logger="esrgan_plugin.models.cards"):
        found = read_card(model)
    assert found is not None and found.description == "kept" and found.licence == ""
    messages = [r.getMessage() for r in caplog.records]
    assert any("field 'license' is 3, expected a string" in m for m in messages)
    assert any("field 'scale' is \"four\", expected a positive whole number" in m for m in messages)
    card.write_text("{not json")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="esrgan_plugin.models.cards"):
        assert read_card(model) is None
    assert len(caplog.records) == 1 and "not readable JSON" in caplog.records[0].getMessage()
    assert load_model(model).card is None  # the model itself still loads


def test_esrgan_models_lists_the_folder(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--models-dir", str(folder), "models", "--json"]) == 0
    rows = {
        r["name"]: r for r in json.loads(capsys.readouterr().out) if r.get("source") == "folder"
    }
    span = rows["4x-span-tiny"]
    assert (span["architecture"], span["scale"], span["licence"]) == ("SPAN", 4, "CC-BY-4.0")
    assert span["parameters"] == sum(p.numel() for p in build("span").parameters())
    assert span["size_bytes"] == (folder / "4x-span-tiny.pth").stat().st_size
    assert (rows["1x-dejpeg"]["architecture"], rows["1x-dejpeg"]["scale"]) == ("SRVGGNetCompact", 1)
    assert rows["2x-esrgan"]["architecture"] == "RRDBNet"
    assert "broken.pth" in rows["broken"]["error"]
    assert main(["models", "--models-dir", str(folder)]) == 0  # after the command, too
    text = capsys.readouterr().out
    assert f"models in {folder} (--model NAME):" in text
    line = next(x for x in text.splitlines() if x.startswith("4x-span-tiny"))
    assert "SPAN" in line and "CC-BY-4.0" in line and "A tiny random SPAN." in line


def test_a_models_dir_that_is_not_a_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--models-dir", str(tmp_path / "nope"), "models"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"esrgan: error: --models-dir {tmp_path / 'nope'}: not a folder"


def test_upscale_and_info_use_folder_names(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = write_image(tmp_path / "in.png", random_image(12, 10))
    out = tmp_path / "out.png"
    args = [
        "upscale",
        str(image),
        "-o",
        str(out),
        "--model",
        "1x-dejpeg",
        "--models-dir",
        str(folder),
    ]
    assert main([*args, "--device", "cpu", "--precision", "fp32"]) == 0
    assert read_image(out).shape == (12, 10, 3)  # an x1 model keeps the size
    expected = load_model(folder / "1x-dejpeg.safetensors")
    from esrgan_plugin import UpscaleOptions, Upscaler

    reference = Upscaler(expected, UpscaleOptions(tile=0, device="cpu", precision="fp32"))
    np.testing.assert_array_equal(read_image(out), reference.upscale(read_image(image)))
    capsys.readouterr()
    assert main(["info", "--models-dir", str(folder), "4x-span-tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"] == "SPAN"


def test_extra_arches_name_their_licence_restriction(tmp_path: Path) -> None:
    """An architecture from spandrel_extra_arches (SRFormer) carries the non-commercial note."""
    pytest.importorskip("spandrel_extra_arches", reason="the extra-arches extra")
    import warnings

    import torch
    from spandrel_extra_arches.architectures.SRFormer import SRFormer

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = SRFormer(
            embed_dim=12, depths=(1,), num_heads=(2,), window_size=4, upscale=2,
            upsampler="pixelshuffledirect", img_size=16,
        )  # fmt: skip
    model = load_model(save(net.eval(), tmp_path / "srformer.pth"))
    assert model.architecture == "SRFormer"
    assert model.describe()["architecture_licence"] == EXTRA_LICENCE
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert model.module(x).shape == (1, 3, 32, 32)
