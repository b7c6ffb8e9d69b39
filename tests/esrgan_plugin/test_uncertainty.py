"""Uncertainty maps: the spread and its output, the map's scale, the stage, Dask blocks, and how
well the map ranks with the real error on Set14."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import random_image, save_tiny, tiny_rrdbnet

from esrgan_plugin.engines import upscalers
from esrgan_plugin.errors import InferenceError
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.options import UncertaintyParams, UpscaleParams
from esrgan_plugin.stages import stage_specs, uncertainty_halo
from esrgan_plugin.uncertainty import (
    combine,
    disagreement,
    map_image,
    read_map,
    upscale_with_uncertainty,
)

FP32 = {"precision": "fp32", "device": "cpu"}


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    upscalers.clear_caches()


@pytest.mark.parametrize("tta", [False, True])
def test_the_output_is_the_upscale_and_the_spread_is_its_size(tta: bool) -> None:
    """One call gives exactly what ``upscale`` gives (the plain pass, or with ``tta`` the
    ensemble) and a non-negative map the size of the output."""
    up = Upscaler(tiny_rrdbnet(scale=2), UpscaleOptions(tile=0, tta=tta, **FP32))
    image = random_image(11, 9)
    out, spread = up.upscale_with_uncertainty(image)
    assert np.array_equal(out, up.upscale(image))
    assert spread.shape == (22, 18) and spread.dtype == np.float32
    assert spread.min() >= 0 and spread.max() > 0


@pytest.mark.parametrize(
    ("shape", "in_ch", "outscale", "expected"),
    [
        ((7, 6), 3, None, (28, 24)),  # grey through an RGB model
        ((7, 6, 1), 3, None, (28, 24)),
        ((7, 6, 4), 3, None, (28, 24)),  # alpha left out of the map
        ((7, 6, 3), 1, None, (28, 24)),  # a grey model on RGB: three maps averaged
        ((7, 6, 3), 3, 2.0, (14, 12)),  # outscale: the map is resized with the output
    ],
)
def test_channels_and_outscale(
    shape: tuple[int, ...], in_ch: int, outscale: float | None, expected: tuple[int, int]
) -> None:
    net = tiny_rrdbnet(in_ch=in_ch, out_ch=in_ch)
    up = Upscaler(net, UpscaleOptions(tile=0, outscale=outscale, **FP32))
    image = random_image(*shape[:2], shape[2] if len(shape) == 3 else None)
    out, spread = up.upscale_with_uncertainty(image)
    assert out.shape == up.upscale(image).shape and spread.shape == expected


def test_map_scale_is_the_documented_one() -> None:
    """value / 65535 = min(1, gain * u): 0.01 at gain 5 is 0.05 of the range; 0.3 saturates."""
    values = np.array([[0.0, 0.01, 0.3]], np.float32)
    image = map_image(values, gain=5.0)
    assert image.dtype == np.uint16
    assert image.tolist() == [[0, round(0.05 * 65535), 65535]]
    assert np.allclose(read_map(image, gain=5.0)[0, :2], values[0, :2], atol=1e-5)
    assert map_image(values, gain=5.0, dtype=np.uint8).tolist() == [[0, 13, 255]]
    with pytest.raises(InferenceError, match="gain -1"):
        map_image(values, gain=-1)


def test_a_reference_adds_its_disagreement() -> None:
    """With a reference, the map is sqrt(spread^2 + mean |output - reference|^2)."""
    model = tiny_rrdbnet()
    other = tiny_rrdbnet()  # other random weights
    up = Upscaler(model, UpscaleOptions(tile=0, **FP32))
    reference = Upscaler(other, UpscaleOptions(tile=0, **FP32))
    image = random_image(8, 8)
    out, alone = upscale_with_uncertainty(up, image)
    _, with_reference = upscale_with_uncertainty(up, image, reference)
    difference = np.abs(out / 255.0 - reference.upscale(image) / 255.0).mean(axis=2)
    assert np.allclose(with_reference, np.sqrt(alone**2 + difference**2), atol=1e-5)
    assert (with_reference >= alone - 1e-7).all() and (with_reference > alone + 1e-3).any()
    assert np.allclose(combine(alone), alone)


def test_a_reference_of_another_scale_is_refused() -> None:
    with pytest.raises(InferenceError, match="a reference must have the same scale"):
        disagreement(np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.uint8))


# --------------------------------------------------------------------------- the stage


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import torch

    folder = tmp_path_factory.mktemp("uncertainty-models")
    torch.manual_seed(3)
    a = save_tiny(folder / "a.safetensors", scale=2, nb=0)  # small halo: several Dask blocks
    torch.manual_seed(4)
    return a, save_tiny(folder / "b.safetensors", scale=2, nb=2)


@pytest.mark.parametrize(("channels", "dtype"), [(None, np.uint8), (3, np.uint16), (4, np.uint8)])
def test_stage_keeps_dtype_and_channels(
    model_files: tuple[Path, Path], channels: int | None, dtype: type
) -> None:
    """A transform keeps dtype and channels: the map in every colour channel, alpha opaque."""
    spec = next(s for s in stage_specs() if s.id == "esrgan.uncertainty")
    params = UncertaintyParams(model=str(model_files[0]), tile=0, **FP32)
    image = random_image(9, 10, channels, dtype)
    out = spec.fn(image, params)
    assert out.dtype == image.dtype and out.shape[:2] == (18, 20)
    assert out.shape[2:] == image.shape[2:]
    expected = map_image(
        upscale_with_uncertainty(upscalers.upscaler_for(params), image)[1], 5.0, image.dtype
    )
    grey = out if channels is None else out[..., 0]
    assert np.array_equal(grey, expected)
    if channels == 4:
        assert (out[..., 3] == 255).all() and np.array_equal(out[..., 1], grey)


def test_stage_halo_covers_the_reference_and_provenance_says_what_the_map_is(
    model_files: tuple[Path, Path],
) -> None:
    from esrgan_plugin.stages import upscale_halo

    plain = UncertaintyParams(model=str(model_files[0]), **FP32)
    paired = UncertaintyParams(
        model=str(model_files[0]), uncertainty_reference=str(model_files[1]), **FP32
    )
    reference_halo = upscale_halo(UpscaleParams(model=str(model_files[1]), **FP32))
    assert uncertainty_halo(paired) == max(uncertainty_halo(plain), reference_halo)
    spec = next(s for s in stage_specs() if s.id == "esrgan.uncertainty")
    assert spec.provenance is not None
    record = spec.provenance(paired)
    assert record["uncertainty_reference"]["sha256"]  # type: ignore[index]
    assert record["uncertainty_map"]["gain"] == 5.0  # type: ignore[index]
    assert "min(1, gain * u)" in record["uncertainty_map"]["definition"]  # type: ignore[index]


@pytest.mark.parametrize("stage", ["esrgan.upscale", "esrgan.uncertainty"])
def test_dask_blocks_equal_the_whole_image_with_tta(
    model_files: tuple[Path, Path], stage: str
) -> None:
    """``tta`` and the map on Dask blocks (halo at the receptive radius) equal the whole image."""
    import dask.array as da

    from esrgan_plugin.arch.rrdbnet import receptive_radius
    from esrgan_plugin.models.loading import load_model
    from pipelines.io.items import ImageItem, ImageMeta
    from pipelines.runner.blocks import BlockPlan, map_image

    spec = next(s for s in stage_specs() if s.id == stage)
    halo = receptive_radius(load_model(model_files[0]).config)  # type: ignore[arg-type]
    kind = UncertaintyParams if stage == "esrgan.uncertainty" else UpscaleParams
    params = kind(model=str(model_files[0]), halo=halo, tile=0, tta=True, **FP32)
    image = random_image(60, 57)
    plan = BlockPlan(spec.halo_for(params), spec.scale_for(params), spec.multiple_for(params))
    item = ImageItem(da.from_array(image, chunks=(24, 24, 3)), ImageMeta("x", None, "uint8", 3))
    blocks = map_image(item, "s", spec.id, spec.fn, params, plan).data
    assert blocks.numblocks[0] > 1 and blocks.numblocks[1] > 1
    result = blocks.compute(scheduler="threads")
    whole = spec.fn(image, params)
    assert np.abs(result.astype(int) - whole.astype(int)).max() <= 1  # within 1/255


# --------------------------------------------------------------------------- Set14, real weights


@pytest.mark.slow
def test_the_map_ranks_with_the_real_error_on_set14(shared_images: Path) -> None:
    """default-psnr on Set14 comic: Spearman's rho between the 8x8-block means of the map and of
    |SR - HR| is at least 0.4 (measured 0.63, docs/evaluation.md); and ``tta`` raises PSNR-Y."""
    from scipy.stats import spearmanr

    from esrgan_plugin.models.loading import load_model
    from pipelines.api import imresize, read_image
    from training.metrics import psnr

    hr = read_image(shared_images / "set14_comic_hr.png")[..., :3]
    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    lr = imresize(hr, 1 / 4)
    model = load_model("default-psnr")
    plain = Upscaler(model, UpscaleOptions(tile=0, **FP32)).upscale(lr)
    ensemble, spread = Upscaler(
        model, UpscaleOptions(tile=0, tta=True, **FP32)
    ).upscale_with_uncertainty(lr)
    error = np.abs(plain / 255.0 - hr / 255.0).mean(axis=2)

    def blocks(values: np.ndarray) -> np.ndarray:
        v = values[4:-4, 4:-4]
        h, w = v.shape[0] // 8 * 8, v.shape[1] // 8 * 8
        return v[:h, :w].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3)).ravel()

    rho = spearmanr(blocks(spread), blocks(error)).statistic
    assert rho >= 0.4, rho
    gain = psnr(ensemble, hr, crop_border=4, test_y_channel=True) - psnr(
        plain, hr, crop_border=4, test_y_channel=True
    )
    assert gain > 0, gain


def test_a_pipeline_writes_the_output_and_its_map(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """The documented YAML: the map is a second branch from the same input, written by
    builtin.write with the map's definition in its provenance record."""
    import esrgan_plugin.hooks as plugin
    from pipelines.api import read_image, read_provenance, write_image
    from pipelines.testing import run_text

    write_image(tmp_path / "in.png", random_image(12, 10, 3, np.uint16))
    with_model = f"{{model: '{model_files[0]}', tta: true, precision: fp32, device: cpu}}"
    summary = run_text(
        f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/in.png"}}}}
          - {{id: sr, uses: esrgan.upscale, with: {with_model}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out/{{name}}.png"}}}}
          - {{id: map, uses: esrgan.uncertainty, input: src, with: {with_model}}}
          - {{id: save, uses: builtin.write, with: {{path: "{tmp_path}/maps/{{name}}.png"}}}}
        """,
        plugin,
    )
    assert len(summary.written) == 2
    out, uncertainty = read_image(tmp_path / "out/in.png"), read_image(tmp_path / "maps/in.png")
    assert out.shape == uncertainty.shape == (24, 20, 3) and uncertainty.dtype == np.uint16
    assert np.array_equal(uncertainty[..., 0], uncertainty[..., 2]) and uncertainty.max() > 0
    record = read_provenance(tmp_path / "maps/in.png")
    assert record is not None
    facts = record["steps"][-1]["provenance"]
    assert facts["uncertainty_map"]["gain"] == 5.0 and facts["tta"] is True
