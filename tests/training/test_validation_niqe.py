"""Training validation reports NIQE when the experiment asks for it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_rrdbnet

from esrgan_plugin.inference import UpscaleOptions, Upscaler
from pipelines.imresize import imresize
from pipelines.io.images import write_image
from training.config import load_config
from training.errors import TrainingError
from training.evaluation.niqe import niqe
from training.loop import train
from training.validation import Validator


def photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / (3 + c + seed)) * np.cos(yy / (5 + c)) for c in range(3)], -1)
    return ((base * 0.4 + 0.5 + rng.normal(0, 0.03, (h, w, 3))).clip(0, 1) * 255).astype(np.uint8)


def test_validator_reports_niqe_of_the_outputs() -> None:
    net = tiny_rrdbnet()
    with torch.no_grad():
        net.conv_last.bias.fill_(0.5)  # mid-grey output, so NIQE is defined
    hr = photo(208, 208, 1)
    lr = imresize(hr, 0.25)
    scores = Validator([(lr, hr)], 4, torch.device("cpu"), niqe=True).evaluate(net)
    sr = Upscaler(net, UpscaleOptions(tile=0, precision="fp32", device="cpu")).upscale(lr)
    assert scores["val_niqe"] == pytest.approx(niqe(sr, crop_border=4), abs=1e-12)
    assert "val_niqe" not in Validator([(lr, hr)], 4, torch.device("cpu")).evaluate(net)


def test_flat_output_gives_nan_not_a_crash() -> None:
    net = tiny_rrdbnet()
    with torch.no_grad():  # a constant grey output, as a network early in training may give
        net.conv_last.weight.zero_()
        net.conv_last.bias.fill_(0.5)
    hr = photo(208, 208, 1)
    scores = Validator([(imresize(hr, 0.25), hr)], 4, torch.device("cpu"), niqe=True).evaluate(net)
    assert math.isnan(scores["val_niqe"]) and math.isfinite(scores["val_psnr_y"])


def _experiment(folder: Path, val_side: int) -> Path:
    for i in range(2):
        write_image(folder / "imgs" / f"p{i}.png", photo(64, 64, i))
    write_image(folder / "val" / "v.png", photo(val_side, val_side, 7))
    path = folder / "exp.yaml"
    path.write_text(
        """\
name: tiny
stage: psnr
output_dir: run
model: {scale: 4, num_features: 8, num_blocks: 1, growth_channels: 4}
data:
  train: {kind: folder, path: imgs}
  validation: {kind: folder, path: val}
  hr_size: 16
  batch_size: 2
optim: {iterations: 2}
validate_every: 2
validate_niqe: true
"""
    )
    return path


def test_training_logs_val_niqe(tmp_path: Path) -> None:
    result = train(load_config(_experiment(tmp_path, 208)), progress=False)
    assert "val_niqe" in result.validation
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    assert "val_niqe" in header


def test_validation_images_too_small_for_niqe(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"validate_niqe: validation image 1 is 120x120"):
        train(load_config(_experiment(tmp_path, 120)), progress=False)
