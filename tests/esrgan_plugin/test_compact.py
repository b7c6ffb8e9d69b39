"""SRVGGNetCompact: Real-ESRGAN's .pth layouts, parity with spandrel, and every inference path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_image, save_tiny

from esrgan_plugin import UpscaleOptions, Upscaler, interpolate_models, load_model
from esrgan_plugin.arch import CompactConfig, SRVGGNetCompact
from esrgan_plugin.arch.registry import model_needs
from esrgan_plugin.cli import main
from esrgan_plugin.engines.upscalers import clear_caches
from esrgan_plugin.errors import InterpolationError
from esrgan_plugin.models.loading import save_model
from esrgan_plugin.options import UpscaleParams
from esrgan_plugin.stages import stage_specs


def tiny_compact(
    upscale: int = 4, output_scale: int = 0, seed: int = 0, nf: int = 8, convs: int = 3
) -> SRVGGNetCompact:
    """A small compact network with every parameter (PReLU slopes too) randomised."""
    torch.manual_seed(seed)
    net = SRVGGNetCompact(
        CompactConfig(num_features=nf, num_convs=convs, upscale=upscale, output_scale=output_scale)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_caches()


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_matches_spandrel_from_a_real_esrgan_pth(tmp_path: Path, scale: int) -> None:
    spandrel = pytest.importorskip("spandrel", reason="spandrel is a dev extra")
    net = tiny_compact(scale)
    path = tmp_path / "realesr.pth"
    torch.save({"params": net.state_dict()}, path)  # as Real-ESRGAN publishes them
    ours = load_model(path)
    assert ours.architecture == "SRVGGNetCompact" and ours.layout == "compact"
    assert ours.config == net.config and ours.scale == scale
    reference = spandrel.ModelLoader().load_from_file(path)
    assert reference.architecture.id == "Compact" and reference.scale == scale
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        expected = reference.model.eval()(x)
        actual = ours.module(x)
    assert actual.shape == expected.shape == (1, 3, 13 * scale, 11 * scale)
    assert (actual - expected).abs().max().item() <= 1e-5


def test_params_ema_is_preferred(tmp_path: Path) -> None:
    ema, plain = tiny_compact(seed=1), tiny_compact(seed=2)
    path = tmp_path / "both.pth"
    torch.save({"params": plain.state_dict(), "params_ema": ema.state_dict()}, path)
    loaded = load_model(path)
    for key, value in ema.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value)


def test_safetensors_round_trip_keeps_the_output_scale(tmp_path: Path) -> None:
    net = tiny_compact(4, output_scale=3)
    out = save_model(tmp_path / "c.safetensors", net)
    loaded = load_model(out)
    assert loaded.config == net.config and loaded.scale == 3
    assert main(["info", str(out), "--json"]) == 0


def test_info_shows_the_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = save_model(tmp_path / "c.safetensors", tiny_compact(2))
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "SRVGGNetCompact" and info["scale"] == 2
    assert info["num_convs"] == 3 and info["receptive_radius"] == 5
    assert main(["info", str(out)]) == 0
    assert "SRVGGNetCompact" in capsys.readouterr().out


@pytest.mark.parametrize(("upscale", "output_scale"), [(3, 0), (4, 3), (4, 2), (1, 0)])
def test_tiles_with_the_receptive_radius_equal_the_whole_image(
    upscale: int, output_scale: int
) -> None:
    net = tiny_compact(upscale, output_scale)
    halo = model_needs(net).receptive_radius
    image = random_image(37, 29)
    whole = Upscaler(net, UpscaleOptions(tile=0, device="cpu")).upscale(image)
    tiled = Upscaler(net, UpscaleOptions(tile=16, halo=halo, device="cpu")).upscale(image)
    scale = output_scale or upscale
    assert whole.shape == (37 * scale, 29 * scale, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


def test_bf16_is_close_to_fp32() -> None:
    net = tiny_compact(4)
    image = random_image(24, 24)
    fp32 = Upscaler(net, UpscaleOptions(tile=0, device="cpu", precision="fp32")).upscale(image)
    bf16 = Upscaler(net, UpscaleOptions(tile=0, device="cpu", precision="bf16")).upscale(image)
    mse = np.mean((fp32.astype(float) - bf16.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 35


def test_interpolating_two_compact_models(tmp_path: Path) -> None:
    a = save_model(tmp_path / "a.safetensors", tiny_compact(seed=1))
    b = save_model(tmp_path / "b.safetensors", tiny_compact(seed=2))
    mixed = interpolate_models(load_model(a), load_model(b), 0.25)
    sa, sb = load_model(a).module.state_dict(), load_model(b).module.state_dict()
    for key, value in mixed.module.state_dict().items():
        torch.testing.assert_close(value, 0.75 * sa[key] + 0.25 * sb[key])
    out = tmp_path / "mix.safetensors"
    assert main(["interpolate", str(a), str(b), "--alpha", "0.25", "-o", str(out)]) == 0
    assert load_model(out).architecture == "SRVGGNetCompact"
    rrdb = save_tiny(tmp_path / "r.safetensors")
    with pytest.raises(InterpolationError, match="differ in architecture"):
        interpolate_models(load_model(a), load_model(rrdb), 0.5)


@pytest.mark.parametrize(("upscale", "output_scale"), [(4, 0), (4, 3), (2, 0)])
def test_chunked_stage_equals_the_whole_image(
    tmp_path: Path, upscale: int, output_scale: int
) -> None:
    import dask.array as da

    from pipelines.io.items import ImageItem, ImageMeta
    from pipelines.runner.blocks import BlockPlan, map_image

    net = tiny_compact(upscale, output_scale)
    path = save_model(tmp_path / "c.safetensors", net)
    params = UpscaleParams(
        model=str(path), halo=model_needs(net).receptive_radius, tile=0, device="cpu"
    )
    spec = next(s for s in stage_specs() if s.id == "esrgan.upscale")
    plan = BlockPlan(spec.halo_for(params), spec.scale_for(params), spec.multiple_for(params))
    image = random_image(45, 38)
    item = ImageItem(da.from_array(image, chunks=(16, 16, 3)), ImageMeta("x", None, "uint8", 3))
    out = map_image(item, "sr", spec.id, spec.fn, params, plan).data
    assert out.numblocks[0] > 1 and out.numblocks[1] > 1
    whole = Upscaler(net, UpscaleOptions(tile=0, device="cpu")).upscale(image)
    result = out.compute(scheduler="threads")
    assert result.shape == whole.shape
    assert np.abs(result.astype(int) - whole.astype(int)).max() <= 1


@pytest.mark.parametrize(
    "config",
    [
        CompactConfig(num_features=8, num_convs=3, upscale=3),
        CompactConfig(num_features=5, num_convs=0, upscale=1, output_scale=0),
    ],
)
def test_parameter_count_formula_matches_the_module(config: CompactConfig) -> None:
    from esrgan_plugin.arch.registry import build_network, parameter_count

    assert parameter_count(config) == sum(p.numel() for p in build_network(config).parameters())


@pytest.mark.parametrize(("scale", "nb"), [(1, 1), (2, 0), (4, 2), (8, 1)])
def test_rrdbnet_parameter_count_formula_matches_the_module(scale: int, nb: int) -> None:
    from esrgan_plugin.arch import RRDBNetConfig
    from esrgan_plugin.arch.registry import build_network, parameter_count

    config = RRDBNetConfig.for_scale(scale, num_features=8, num_blocks=nb, growth_channels=4)
    assert parameter_count(config) == sum(p.numel() for p in build_network(config).parameters())
