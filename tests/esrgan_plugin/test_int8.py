"""int8 inference: quantised dense blocks, calibration and its cache, and the user-facing paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_image, save_tiny, tiny_rrdbnet

from esrgan_plugin.arch.compact import SRVGGNetCompact
from esrgan_plugin.cli import main
from esrgan_plugin.engines import calibration as calibration_module
from esrgan_plugin.engines.calibration import (
    CROP,
    LR_CROPS,
    ActivationRange,
    Calibration,
    calibrate,
    calibration_for,
    default_images,
    user_images,
)
from esrgan_plugin.engines.onednn.int8 import Int8Options, int8_available, quantize_rrdbnet
from esrgan_plugin.errors import InferenceError
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from pipelines.io.images import read_image, write_image

pytestmark = pytest.mark.skipif(not int8_available(), reason="no oneDNN int8 in this PyTorch")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_kept_blocks_are_more_accurate() -> None:
    torch.manual_seed(0)
    net = tiny_rrdbnet(nf=16, nb=2, gc=8)
    x = torch.rand(1, 3, 16, 16)
    calibration = calibrate(net, [x])
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    all_int8 = psnr(quantize_rrdbnet(net, calibration)(x).clamp(0, 1), expected)
    kept = Int8Options(keep_blocks=frozenset({0}), keep_last=5)
    assert kept.kept(6) == frozenset(range(6))
    assert psnr(quantize_rrdbnet(net, calibration, kept)(x).clamp(0, 1), expected) > all_int8 + 20


def test_calibration_ranges_cover_zero_and_round_trip() -> None:
    net = tiny_rrdbnet(nb=2)
    calibration = calibrate(net, [torch.rand(1, 3, 8, 8)])
    assert len(calibration.ranges) == 6
    for block in calibration.ranges:
        for r in (block.x, block.features, *block.parts):
            assert r.low <= 0 <= r.high and r.high > r.low
        assert len(block.parts) == 4  # x1 .. x4, each on its own; together the shared range
        assert min(p.low for p in block.parts) == block.features.low
        assert max(p.high for p in block.parts) == block.features.high
        assert len(block.channels) == net.config.num_features  # each channel of x on its own
        assert all(c.low <= 0 <= c.high for c in block.channels)
        assert math.isclose(min(c.low for c in block.channels), block.x.low, rel_tol=1e-6)
        assert math.isclose(max(c.high for c in block.channels), block.x.high, rel_tol=1e-6)
    assert Calibration.from_json(calibration.to_json()) == calibration
    r = ActivationRange(-1.0, 3.0)
    assert r.zero_point == round(1.0 / r.scale) and math.isclose(r.scale, 4 / 255)


def test_a_calibration_without_feature_ranges_reads_as_shared() -> None:
    """A row of four bounds (a calibration of version 3's shape) has no per-feature ranges."""
    row = {"version": 4, "ranges": [[-1.0, 1.0, -0.5, 2.0]], "tail": []}
    (block,) = Calibration.from_json(json.dumps(row)).ranges
    assert block.parts == () and block.features == ActivationRange(-0.5, 2.0)
    assert block.channels == ()


def test_the_openvino_default_set_adds_quarter_size_crops() -> None:
    photos = default_images()
    wider = default_images(with_lr_crops=True)
    assert len(wider) == len(photos) + len(LR_CROPS)
    assert all(np.array_equal(a, b) for a, b in zip(photos, wider, strict=False))
    for crop in wider[len(photos) :]:
        assert crop.shape == (CROP, CROP, 3) and crop.dtype == np.uint8 and crop.std() > 5


def test_calibration_cached_per_model_and_set(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = tiny_rrdbnet(nb=1)
    first = calibration_for(net)
    entries = list((cache / "int8").glob("*.json"))
    assert len(entries) == 1

    def fail(*_args: object) -> Calibration:
        raise AssertionError("recalibrated although cached")

    monkeypatch.setattr(calibration_module, "calibrate", fail)
    assert calibration_for(net) == first
    monkeypatch.undo()
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(cache))
    write_image(tmp_path / "photos" / "a.png", random_image(20, 24))
    calibration_for(net, tmp_path / "photos")  # another set: another entry
    calibration_for(tiny_rrdbnet(nb=1), None)  # another model (new random weights): another
    assert len(list((cache / "int8").glob("*.json"))) == 3


def test_corrupt_cache_entry_is_recomputed(cache: Path) -> None:
    net = tiny_rrdbnet(nb=1)
    good = calibration_for(net)
    (entry,) = (cache / "int8").glob("*.json")
    entry.write_text("{not json")
    assert calibration_for(net) == good
    assert Calibration.from_json(entry.read_text()) == good


def test_bad_calibration_source_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InferenceError, match="does not exist"):
        user_images([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InferenceError, match="no images"):
        user_images(tmp_path / "empty")


def test_upscaler_int8_and_its_limits() -> None:
    net = tiny_rrdbnet()
    image = random_image(12, 12)
    out = Upscaler(net, UpscaleOptions(device="cpu", precision="int8")).upscale(image)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    with pytest.raises(InferenceError, match="int8 on RRDBNet models only"):
        Upscaler(SRVGGNetCompact(), UpscaleOptions(device="cpu", precision="int8"))


def test_cli_int8(tmp_path: Path) -> None:
    model = save_tiny(tmp_path / "tiny.safetensors")
    src = write_image(tmp_path / "in.png", random_image(10, 12))
    write_image(tmp_path / "calib" / "c.png", random_image(16, 16))
    out = tmp_path / "out.png"
    args = ["upscale", str(src), "-o", str(out), "--model", str(model), "--precision", "int8"]
    assert main([*args, "--calibration", str(tmp_path / "calib")]) == 0
    assert read_image(out).shape == (40, 48, 3)
