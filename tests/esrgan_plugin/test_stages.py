"""The ESRGAN stages: parameters, per-process model cache, on-the-fly interpolation, artefacts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import random_image, save_tiny

from esrgan_plugin import UpscaleOptions, Upscaler, interpolate_models, load_model
from esrgan_plugin import stages as stages_module
from esrgan_plugin.errors import EsrganError
from esrgan_plugin.stages import (
    InterpolateParams,
    UpscaleParams,
    interpolate,
    stage_specs,
    upscale,
    upscale_scale,
)
from pipelines.registry import StageSpec


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    stages_module.clear_caches()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    import torch

    torch.manual_seed(1)
    a = save_tiny(folder / "a.safetensors")
    torch.manual_seed(2)
    b = save_tiny(folder / "b.safetensors")
    return a, b


def test_specs_are_declarative() -> None:
    specs = {s.id: s for s in stage_specs()}
    assert set(specs) == {"esrgan.upscale", "esrgan.interpolate"}
    assert all(isinstance(s, StageSpec) for s in specs.values())
    assert specs["esrgan.upscale"].consumes == "images" and specs["esrgan.upscale"].produces == "images"
    assert specs["esrgan.interpolate"].consumes is None and specs["esrgan.interpolate"].produces == "artefact"
    assert specs["esrgan.upscale"].halo_for(UpscaleParams(halo=7)) == 7


def test_upscale_stage_matches_the_library(models: tuple[Path, Path]) -> None:
    image = random_image(9, 7)
    out = upscale(image, UpscaleParams(model=str(models[0]), tile=0, device="cpu"))
    expected = Upscaler(load_model(models[0]), UpscaleOptions(tile=0, device="cpu")).upscale(image)
    np.testing.assert_array_equal(out, expected)
    assert upscale_scale(UpscaleParams(model=str(models[0]))) == 4.0
    assert upscale_scale(UpscaleParams(model=str(models[0]), outscale=2.5)) == 2.5
    assert upscale_scale(UpscaleParams(model="${steps.mix.output}")) is None


def test_models_are_loaded_once_per_process_and_reloaded_when_the_file_changes(
    models: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import esrgan_plugin.checkpoint as checkpoint

    calls: list[str] = []
    real = checkpoint.load_model
    monkeypatch.setattr(checkpoint, "load_model", lambda p: calls.append(str(p)) or real(p))
    path = tmp_path / "m.safetensors"
    path.write_bytes(models[0].read_bytes())
    params = UpscaleParams(model=str(path), tile=0, device="cpu")
    first = upscale(random_image(5, 5), params)
    upscale(random_image(5, 5), params)
    upscale(random_image(5, 5), params.model_copy(update={"tile": 16}))  # new options, same model
    assert len(calls) == 1
    path.write_bytes(models[1].read_bytes())
    os.utime(path, ns=(1, 1))
    second = upscale(random_image(5, 5), params)
    assert len(calls) == 2 and not np.array_equal(first, second)


def test_on_the_fly_interpolation_equals_an_interpolated_model(models: tuple[Path, Path]) -> None:
    image = random_image(6, 6)
    a, b = (str(m) for m in models)

    def run(**kw: object) -> np.ndarray:
        return upscale(image, UpscaleParams(tile=0, device="cpu", **kw))  # type: ignore[arg-type]

    np.testing.assert_array_equal(run(model=a, interpolate_with=b, alpha=0.0), run(model=a))
    np.testing.assert_array_equal(run(model=a, interpolate_with=b, alpha=1.0), run(model=b))
    mixed = interpolate_models(load_model(a), load_model(b), 0.3)
    expected = Upscaler(mixed, UpscaleOptions(tile=0, device="cpu")).upscale(image)
    np.testing.assert_array_equal(run(model=a, interpolate_with=b, alpha=0.3), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": 8}, "at least 16"),
        ({"alpha": 0.5}, "go together"),
        ({"interpolate_with": "b.pth"}, "go together"),
        ({"interpolate_with": "b.pth", "alpha": 1.5}, "less than or equal to 1"),
        ({"device": "gpu"}, "not one of auto"),
        ({"precision": "fp8"}, "Input should be"),
        ({"outscale": 0}, "greater than 0"),
    ],
)
def test_upscale_params_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UpscaleParams(**kwargs)  # type: ignore[arg-type]


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EsrganError, match="model file not found"):
        upscale(random_image(4, 4), UpscaleParams(model=str(tmp_path / "nope.safetensors")))
    with pytest.raises(EsrganError, match="shipped model 'default-psnr' is missing|not found"):
        upscale_scale(UpscaleParams())


def test_interpolate_stage_writes_an_artefact_and_refuses_to_overwrite(models: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "mix.safetensors"
    params = InterpolateParams(model_a=str(models[0]), model_b=str(models[1]), alpha=0.25, output=str(out))
    assert interpolate(params) == str(out)
    written = load_model(out)
    assert written.metadata.get("interpolation_alpha") == "0.25"
    with pytest.raises(EsrganError, match="output exists"):
        interpolate(params)
    with pytest.raises(ValueError, match="safetensors"):
        InterpolateParams(model_a="a", model_b="b", alpha=0.5, output="x.pth")
    with pytest.raises(ValueError, match="less than or equal to 1"):
        InterpolateParams(model_a="a", model_b="b", alpha=2, output="x.safetensors")
