"""The halo probe: error profiles, the bound, the weights hash and the measurement caches."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_rrdbnet

from esrgan_plugin.arch.rrdbnet import receptive_radius
from esrgan_plugin.inference import upscale
from esrgan_plugin.models.loading import load_model
from esrgan_plugin.tiles import halo as halo_mod
from esrgan_plugin.tiles.halo import (
    HALO_BOUND,
    cache_path,
    cut_error_profile,
    halo_for_bound,
    measure_halo,
    model_halo,
    probe_photos,
    weights_sha256,
)


def test_halo_for_bound_is_the_first_distance_after_the_last_excess() -> None:
    profile = np.array([0.5, 0.1, 0.002, 0.0025, 0.001, 0.0, 0.0])
    assert halo_for_bound(profile, 0.003) == 2
    assert halo_for_bound(profile, 0.002) == 4
    assert halo_for_bound(profile, 1.0) == 0
    assert halo_for_bound(np.array([0.5, 0.5]), 0.1) is None  # never falls within the bound


def test_cut_profile_is_zero_beyond_a_local_networks_radius() -> None:
    """A stack of three 3x3 convs (radius 3) with zero padding: exact from distance 3 on."""
    torch.manual_seed(0)
    convs = torch.nn.Sequential(*(torch.nn.Conv2d(3, 3, 3, padding=1) for _ in range(3)))
    image = probe_photos(24, 1)[0]
    profile = cut_error_profile(lambda x: convs(x) + 0.5, image, scale=1, cut=12)
    assert profile[:3].max() > 1e-3
    assert profile[3:].max() < 1e-6


def test_measured_halo_keeps_tiles_within_the_bound_on_another_photo() -> None:
    net = tiny_rrdbnet(nb=2)
    found = measure_halo(net)
    assert found.halo % 8 == 0 and found.halo <= receptive_radius(net.config)
    from skimage import data

    image = data.rocket()[150:246, 200:296]  # not a probe photo
    whole = upscale(image, net, tile=0)
    tiled = upscale(image, net, tile=16, halo=found.halo)
    assert np.abs(whole.astype(int) - tiled).max() <= 2  # bound 0.5/255 on the probe photos
    if found.halo >= 8:  # a smaller halo is worse: the probe's halo is not oversized
        smaller = upscale(image, net, tile=16, halo=found.halo - 8)
        assert np.abs(whole.astype(int) - smaller).max() > 0


def test_weights_hash_ignores_device_and_layout_and_sees_every_weight() -> None:
    net = tiny_rrdbnet()
    digest = weights_sha256(net)
    assert weights_sha256(net.to(memory_format=torch.channels_last)) == digest
    with torch.no_grad():
        net.conv_last.bias[0] += 1e-6
    assert weights_sha256(net) != digest


def test_model_halo_is_cached_on_disk_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path))
    net = tiny_rrdbnet()
    first = model_halo(net)
    path = cache_path(weights_sha256(net), HALO_BOUND)
    assert path.is_file() and json.loads(path.read_text())["halo"] == first.halo

    def no_measuring(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured again although cached")

    monkeypatch.setattr(halo_mod, "measure_halo", no_measuring)
    copy = tiny_rrdbnet()
    copy.load_state_dict(net.state_dict())  # same weights, another object: from the file
    assert model_halo(copy) == first


def test_a_corrupt_cache_entry_is_measured_again_and_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path))
    net = tiny_rrdbnet()
    path = cache_path(weights_sha256(net), HALO_BOUND)
    path.parent.mkdir(parents=True)
    path.write_text('{"halo": 3, "bound": 0.001}')  # truncated / wrong
    with caplog.at_level(logging.WARNING):
        found = model_halo(net)
    assert "corrupt" in caplog.text
    assert json.loads(path.read_text())["halo"] == found.halo
    assert found.weights_sha256 == weights_sha256(net)


def test_a_read_only_cache_folder_still_gives_the_halo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(folder / "cache"))
    try:
        with caplog.at_level(logging.WARNING):
            found = model_halo(tiny_rrdbnet())
    finally:
        folder.chmod(0o700)
    assert found.halo >= 0
    if "could not cache" not in caplog.text:  # running as root: the folder was writable
        assert (folder / "cache").is_dir()


@pytest.mark.parametrize("name", ["default-psnr", "default-gan"])
def test_shipped_models_have_their_measured_halo_in_the_shipped_table(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same halo and profile on this CPU; the profile's float errors may differ in the
    last bits between CPUs (AVX2 and AVX-512 sum in other orders: up to 4e-7 measured)."""
    model = load_model(name)
    measured = measure_halo(model.module)
    monkeypatch.setattr(halo_mod, "measure_halo", None)  # must come from the table
    shipped = model_halo(model.module)
    assert dataclasses.replace(shipped, profile=measured.profile) == measured
    assert len(shipped.profile) == len(measured.profile)
    assert max(abs(a - b) for a, b in zip(shipped.profile, measured.profile, strict=True)) < 1e-5


def test_weights_hash_includes_the_config() -> None:
    """realesr-animevideov3 x2 and x4 share their weights; their networks (and halos) differ."""
    from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact

    x4 = SRVGGNetCompact(CompactConfig(num_features=8, num_convs=2, upscale=4))
    x2 = SRVGGNetCompact(CompactConfig(num_features=8, num_convs=2, upscale=4, output_scale=2))
    x2.load_state_dict(x4.state_dict())
    assert weights_sha256(x2) != weights_sha256(x4)
