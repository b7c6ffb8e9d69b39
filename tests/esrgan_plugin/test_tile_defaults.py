"""The default tile: halo cost, memory budget, measured cost curves, and no free-memory dependence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_image, save_tiny, tiny_rrdbnet

from esrgan_plugin import tiled_upscaler
from esrgan_plugin.cli import main
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.tiles import defaults as tile_defaults
from esrgan_plugin.tiles import halo as halo_mod
from esrgan_plugin.tiles.defaults import (
    MAX_HALO_WORK,
    TAIL_RESERVE_BYTES,
    CostCurve,
    activation_bytes_per_pixel,
    choose_tile,
    memory_budget_pixels,
    predicted_cost,
)
from pipelines.io.images import read_image, write_image


def test_whole_image_when_it_fits_and_costs_are_flat() -> None:
    assert choose_tile(1000, 800, halo=64, multiple=1, max_pixels=10**7) == 0


def test_tiles_keep_the_halo_within_a_third_when_memory_allows() -> None:
    tile = choose_tile(4000, 3000, halo=64, multiple=1, max_pixels=2_000_000)
    assert tile > 0
    _, work = predicted_cost(4000, 3000, tile, 64, 1, CostCurve((1,), (1.0,)))
    assert work <= MAX_HALO_WORK
    assert (tile + 128) ** 2 <= 2_000_000


def test_memory_short_of_the_third_uses_the_largest_fitting_tile() -> None:
    tile = choose_tile(4000, 4000, halo=64, multiple=4, max_pixels=300_000)
    assert tile % 4 == 0 and (tile + 128) ** 2 <= 300_000
    bigger = [s for s in (tile * 2,) if (s + 128) ** 2 <= 300_000]
    assert not bigger


def test_tiles_even_when_the_whole_image_fits_if_a_cheaper_per_pixel_tile_wins() -> None:
    """A measured curve where small forwards are 2x cheaper per pixel (cache effects)."""
    curve = CostCurve((256, 1024), (0.5, 1.0))
    tile = choose_tile(2048, 2048, halo=8, multiple=1, max_pixels=10**8, curve=curve)
    assert tile not in (0, 2048) and (tile + 16) ** 2 <= 256**2 * 1.2


def test_activation_estimate_is_per_precision() -> None:
    """The trunk's memory per pixel, the HR tail in strips (measured 3.6 and 2.3 KB per pixel)."""
    fp32 = activation_bytes_per_pixel(64, 4, 1, "fp32")
    bf16 = activation_bytes_per_pixel(64, 4, 1, "bf16")
    assert 3_500 < fp32 < 3_800 and 2_300 < bf16 < 3_100


@pytest.mark.parametrize("size", [1500, 2048, 4096, 8192])
def test_x4plus_default_tiles_cost_at_most_a_third_on_a_23_gb_machine(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RealESRGAN_x4plus (nf 64, halo 72) on this project's 23.5 GB CPU machines: issue 9's target."""
    monkeypatch.setattr(tile_defaults, "total_memory_bytes", lambda device: int(23.5 * 2**30))
    for precision in ("fp32", "bf16"):
        budget = memory_budget_pixels(
            torch.device("cpu"), activation_bytes_per_pixel(64, 4, 1, precision)
        )
        tile = choose_tile(size, size, halo=72, multiple=1, max_pixels=budget)
        _, work = predicted_cost(size, size, tile, 72, 1, CostCurve((1,), (1.0,)))
        assert tile > 0 and work <= MAX_HALO_WORK


def test_default_tiling_does_not_depend_on_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same image, same command, different free memory: the same tile and identical pixels."""
    net = tiny_rrdbnet()
    image = np.random.default_rng(3).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    monkeypatch.setattr(tiled_upscaler, "memory_budget_pixels", lambda device, bpp: 40_000)
    outputs, tiles = [], []
    for free in (10**9, 10**12):
        monkeypatch.setattr(tiled_upscaler, "free_memory_bytes", lambda device, free=free: free)
        up = Upscaler(net, UpscaleOptions())
        tiles.append(up._initial_tile(300, 200))
        outputs.append(up.upscale(image))
    assert tiles[0] == tiles[1] > 0
    assert np.array_equal(outputs[0], outputs[1])


def test_short_free_memory_shrinks_the_tile_within_the_halo_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = tiny_rrdbnet()
    image = np.random.default_rng(4).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    whole = Upscaler(net, UpscaleOptions(tile=0)).upscale(image)
    up = Upscaler(net, UpscaleOptions())
    monkeypatch.setattr(
        tiled_upscaler,
        "free_memory_bytes",
        lambda device: 20_000 * up.bytes_per_pixel() + TAIL_RESERVE_BYTES,
    )
    tile = up._initial_tile(200, 200)
    assert 0 < tile < 200 and (tile + 2 * up.halo) ** 2 <= 20_000
    assert np.abs(up.upscale(image).astype(int) - whole).max() <= 2


def test_same_command_twice_gives_identical_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``esrgan upscale`` twice with the default tile and halo, free memory differing: same bytes.

    The memory budget is made small so the default tiles the image; the second run reads the
    measured halo back from the cache folder instead of measuring it.
    """
    model = save_tiny(tmp_path / "tiny.safetensors")
    src = write_image(tmp_path / "in.png", random_image(150, 130))
    monkeypatch.setattr(tiled_upscaler, "memory_budget_pixels", lambda device, bpp: 12_000)
    outputs = []
    for i, free in enumerate((10**9, 10**12)):
        monkeypatch.setattr(tiled_upscaler, "free_memory_bytes", lambda device, free=free: free)
        halo_mod._MEMO.clear()
        out = tmp_path / "out.png"  # the same command: its provenance record names the output
        assert main(["upscale", str(src), "-o", str(out), "--model", str(model)]) == 0
        outputs.append(out.read_bytes())
        out.rename(tmp_path / f"out{i}.png")
    assert outputs[0] == outputs[1]
    assert read_image(tmp_path / "out0.png").shape == (600, 520, 3)
