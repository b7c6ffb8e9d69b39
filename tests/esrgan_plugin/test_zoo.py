"""Shipped models by name: present ones load, a missing one says how to rebuild it."""

from __future__ import annotations

from pathlib import Path

import pytest

from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.models import names
from esrgan_plugin.models import shipped as zoo
from esrgan_plugin.models.loading import load_model


@pytest.mark.parametrize("name", ["default-psnr", "default-gan"])
def test_shipped_models_load_by_name(name: str) -> None:
    model = load_model(name)
    assert model.scale == 4 and model.architecture == "RRDBNet"
    assert model.metadata["stage"] == ("gan" if name == "default-gan" else "psnr")


def test_default_gan_says_its_vgg_was_random() -> None:
    assert load_model("default-gan").metadata["vgg_weights"] == "random"


def test_missing_shipped_model_says_how_to_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(zoo.SHIPPED_MODELS, "default-future", "not-there.safetensors")
    with pytest.raises(CheckpointError, match="make default-models"):
        load_model("default-future")


def test_other_values_are_paths(tmp_path: Path) -> None:
    (tmp_path / "x.pth").write_bytes(b"")
    assert names.resolve_model_path(str(tmp_path / "x.pth")) == tmp_path / "x.pth"
    with pytest.raises(CheckpointError, match="missing.pth: model file not found"):
        names.resolve_model_path(str(tmp_path / "missing.pth"))
