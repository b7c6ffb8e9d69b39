"""The ESRGAN stages: parameters, per-process model cache, on-the-fly interpolation, artefacts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import random_image, save_tiny

from esrgan_plugin import UpscaleOptions, Upscaler, interpolate_models, load_model
from esrgan_plugin import stages as stages_module
from esrgan_plugin.engines import upscalers
from esrgan_plugin.errors import EsrganError
from esrgan_plugin.options import UpscaleParams
from esrgan_plugin.stages import (
    InterpolateParams,
    interpolate,
    stage_specs,
    upscale,
    upscale_scale,
)
from pipelines.runner.registry import StageSpec


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    upscalers.clear_caches()


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
    assert set(specs) == {"esrgan.upscale", "esrgan.uncertainty", "esrgan.interpolate"}
    assert all(isinstance(s, StageSpec) for s in specs.values())
    assert (
        specs["esrgan.upscale"].consumes == "images"
        and specs["esrgan.upscale"].produces == "images"
    )
    assert (
        specs["esrgan.interpolate"].consumes is None
        and specs["esrgan.interpolate"].produces == "artefact"
    )
    assert specs["esrgan.upscale"].halo_for(UpscaleParams(halo=7)) == 7


def test_upscale_stage_matches_the_library(models: tuple[Path, Path]) -> None:
    image = random_image(9, 7)
    out = upscale(image, UpscaleParams(model=str(models[0]), tile=0, device="cpu"))
    expected = Upscaler(load_model(models[0]), UpscaleOptions(tile=0, device="cpu")).upscale(image)
    np.testing.assert_array_equal(out, expected)
    assert upscale_scale(UpscaleParams(model=str(models[0]))) == 4.0
    assert upscale_scale(UpscaleParams(model=str(models[0]), outscale=2.5)) == 2.5


def test_models_are_loaded_once_per_process_and_reloaded_when_the_file_changes(
    models: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import esrgan_plugin.engines.upscalers as checkpoint

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
        ({"device": "gpu"}, "must be one of auto, cpu"),
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
    assert (
        upscale_scale(UpscaleParams()) == 4.0
    )  # the default model (realesrgan-x4plus or default-psnr)


def test_interpolate_stage_writes_an_artefact_and_refuses_to_overwrite(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "mix.safetensors"
    params = InterpolateParams(
        model_a=str(models[0]), model_b=str(models[1]), alpha=0.25, output=str(out)
    )
    assert interpolate(params) == str(out)
    written = load_model(out)
    assert written.metadata.get("interpolation_alpha") == "0.25"
    with pytest.raises(EsrganError, match="output exists"):
        interpolate(params)
    with pytest.raises(ValueError, match="safetensors"):
        InterpolateParams(model_a="a", model_b="b", alpha=0.5, output="x.pth")
    with pytest.raises(ValueError, match="less than or equal to 1"):
        InterpolateParams(model_a="a", model_b="b", alpha=2, output="x.safetensors")


# --------------------------------------------------------------------------- chunked (Dask) upscaling


def _chunked(image: np.ndarray, chunks: tuple[int, ...], params: UpscaleParams) -> object:
    """``esrgan.upscale`` mapped block by block over a Dask array, as the pipeline runner maps it."""
    import dask.array as da

    from pipelines.io.items import ImageItem, ImageMeta
    from pipelines.runner.blocks import BlockPlan, map_image

    spec = next(s for s in stage_specs() if s.id == "esrgan.upscale")
    plan = BlockPlan(spec.halo_for(params), spec.scale_for(params), spec.multiple_for(params))
    item = ImageItem(
        da.from_array(image, chunks=chunks), ImageMeta("x", None, image.dtype.name, image.shape[-1])
    )
    return map_image(item, "sr", spec.id, spec.fn, params, plan).data


@pytest.mark.parametrize(
    ("scale", "shape", "chunks", "tile"),
    [
        (
            4,
            (50, 47, 3),
            (24, 24, 3),
            0,
        ),  # rows 24+24+2: the last block, smaller than the halo, is merged
        (4, (50, 47, 3), (16, 20, 3), 0),  # blocks smaller than the halo are regrown to it
        (4, (61, 45, 4), (30, 20, 4), 16),  # ragged edges, alpha, tiles batched inside each block
        (
            2,
            (90, 83, 3),
            (41, 41, 3),
            0,
        ),  # x2 (pixel-unshuffle 2): block starts rounded to even pixels
        (1, (160, 170, 3), (75, 75, 3), 0),  # x1 (pixel-unshuffle 4)
    ],
)
def test_chunked_upscale_equals_the_whole_image(
    tmp_path: Path, scale: int, shape: tuple[int, ...], chunks: tuple[int, ...], tile: int
) -> None:
    from esrgan_plugin.arch.rrdbnet import receptive_radius

    model = save_tiny(tmp_path / f"x{scale}.safetensors", scale=scale)
    loaded = load_model(model)
    halo = receptive_radius(loaded.config)  # type: ignore[arg-type]
    image = random_image(*shape[:2], shape[2])
    params = UpscaleParams(model=str(model), halo=halo, tile=tile, batch_size=4, device="cpu")
    out = _chunked(image, chunks, params)
    multiple = loaded.multiple_of
    assert out.numblocks[0] > 1 and out.numblocks[1] > 1
    assert all(b % (scale * multiple) == 0 for axis in out.chunks[:2] for b in np.cumsum(axis[:-1]))
    whole = Upscaler(loaded, UpscaleOptions(tile=0, device="cpu")).upscale(image)
    result = out.compute(scheduler="threads")
    assert result.shape == whole.shape
    assert np.abs(result.astype(int) - whole.astype(int)).max() <= 1  # within 1/255


def test_the_graph_carries_parameters_not_the_model(
    models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cloudpickle
    import dask

    import esrgan_plugin.engines.upscalers as checkpoint

    loads: list[str] = []
    real = checkpoint.load_model
    monkeypatch.setattr(checkpoint, "load_model", lambda p: loads.append(str(p)) or real(p))
    params = UpscaleParams(model=str(models[0]), halo=8, tile=0, device="cpu")
    out = _chunked(random_image(64, 64), (16, 16, 3), params)
    graph = dict(dask.optimize(out)[0].__dask_graph__())
    payload = cloudpickle.dumps(graph)
    assert len(graph) >= 16 and len(payload) < 64 * 1024, len(
        payload
    )  # about 35 KB; the tiny model alone is 75 KB
    assert b"torch." not in payload and b"_rebuild_tensor" not in payload  # no torch objects
    out.compute(scheduler="threads")
    assert len(loads) == 1  # once in this process, shared by all 16 blocks


def test_torch_threads_follow_the_workers_thread_share(
    models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(upscalers.TORCH_THREADS_ENV, raising=False)
        monkeypatch.setenv(
            "OMP_NUM_THREADS", "1"
        )  # as the runner sets it in worker processes, even after torch started
        upscale(random_image(4, 4), UpscaleParams(model=str(models[0]), tile=0, device="cpu"))
        assert torch.get_num_threads() == 1
        monkeypatch.setenv(upscalers.TORCH_THREADS_ENV, "x")
        with pytest.raises(EsrganError, match="ESRGAN_TORCH_THREADS='x' is not a whole number"):
            upscale(random_image(4, 4), UpscaleParams(model=str(models[0]), tile=0, device="cpu"))
    finally:
        torch.set_num_threads(before)


def test_provenance_records_the_resolved_halo_and_engine(models: tuple[Path, Path]) -> None:
    """An unset halo is recorded as the one the model needs (what every block then uses)."""
    params = UpscaleParams(model=str(models[0]), tile=0, device="cpu")
    record = stages_module.upscale_provenance(params)
    expected = Upscaler(load_model(models[0]), UpscaleOptions(tile=0, device="cpu")).halo
    assert record["halo"] == expected and isinstance(expected, int)
    assert record["engine"] == Upscaler(load_model(models[0]), UpscaleOptions()).engine.name
    mixed = UpscaleParams(
        model=str(models[0]), interpolate_with=str(models[1]), alpha=0.5, tile=0, device="cpu"
    )
    blended = interpolate_models(load_model(models[0]), load_model(models[1]), 0.5)
    expected_mixed = Upscaler(blended, UpscaleOptions(tile=0, device="cpu")).halo
    assert stages_module.upscale_provenance(mixed)["halo"] == expected_mixed
