"""The x8 self-ensemble (``tta``): transforms, averaging, tiles and Dask blocks, and its gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import random_image, tiny_rrdbnet

from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact
from esrgan_plugin.arch.rrdbnet import receptive_radius
from esrgan_plugin.ensemble import (
    PASSES,
    TRANSFORMS,
    SelfEnsemble,
    forward_transform,
    inverse_transform,
)
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.tiles.halo import HALO_BOUND

FP32 = {"precision": "fp32", "device": "cpu"}


def test_the_eight_transforms_are_distinct_and_undone() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    images = [forward_transform(x, turns, flip) for turns, flip in TRANSFORMS]
    assert len(TRANSFORMS) == PASSES == 8 and TRANSFORMS[0] == (0, False)
    assert len({tuple(i.flatten().tolist()) for i in images}) == 8
    for (turns, flip), image in zip(TRANSFORMS, images, strict=True):
        assert torch.equal(inverse_transform(image, turns, flip), x)


def test_an_equivariant_network_has_no_spread() -> None:
    """Nearest-neighbour upscaling commutes with flips and rotations: the average is the plain
    output and the spread is zero."""

    def nearest(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")

    x = torch.rand(2, 3, 5, 7)
    out = SelfEnsemble(nearest).with_spread(x)
    assert torch.allclose(out[:, :3], nearest(x), atol=1e-6)
    assert out.shape == (2, 4, 10, 14) and out[:, 3].abs().max() < 1e-6


def test_the_average_and_spread_match_a_hand_computed_ensemble() -> None:
    """A network that adds a fixed ramp (not equivariant): each pass returns up(x) plus the
    ramp transformed back, so the average is up(x) plus the mean of the eight undone ramps,
    computed here with NumPy's own rotations and flips."""
    height, width = 6, 6
    ramp = np.linspace(0, 0.2, 2 * height * 2 * width, dtype=np.float32).reshape(2 * height, -1)

    def network(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") + torch.from_numpy(ramp)

    x = torch.rand(1, 3, height, width) * 0.5 + 0.2
    ramps = []
    for turns, flip in TRANSFORMS:  # the pass on T(x) adds the ramp; undone, T^-1(ramp)
        undone = np.rot90(ramp, -turns)
        ramps.append(np.fliplr(undone) if flip else undone)
    up = F.interpolate(x, scale_factor=2, mode="nearest")[0]
    expected_mean = up + torch.from_numpy(np.mean(ramps, axis=0))
    expected_std = np.std(ramps, axis=0)  # the same for every channel
    out = SelfEnsemble(network).with_spread(x)
    assert torch.allclose(out[0, :3], expected_mean, atol=1e-6)
    assert np.allclose(out[0, 3].numpy(), expected_std, atol=1e-6)
    plain = SelfEnsemble(network).with_spread(x, average=False)
    assert torch.allclose(plain[0, :3], network(x)[0], atol=1e-6)


@pytest.mark.parametrize(("scale", "tile"), [(1, 16), (2, 16), (4, 16)])
def test_tiled_tta_equals_whole_tta_at_the_receptive_radius(scale: int, tile: int) -> None:
    """Per-tile ensembles are seamless: odd sizes, and the x1/x2 models' pixel-unshuffle (tiles
    padded to the multiple before flipping, as the whole image is). Middle tiles' windows lie
    inside the image, so a seam could show."""
    net = tiny_rrdbnet(scale=scale, nb=0)  # a small receptive radius keeps the image small
    halo = receptive_radius(net.config)
    x = torch.rand(1, 3, 3 * tile + 2 * halo + 5, 3 * tile + 2 * halo - 3)
    whole = Upscaler(net, UpscaleOptions(tile=0, tta=True, **FP32)).upscale_tensor(x)
    tiled = Upscaler(net, UpscaleOptions(tile=tile, halo=halo, tta=True, batch_size=2, **FP32))
    plain = Upscaler(net, UpscaleOptions(tile=0, **FP32)).upscale_tensor(x).clamp(0, 1)
    assert (whole - tiled.upscale_tensor(x)).abs().max().item() < 1e-5
    assert (whole - plain).abs().max().item() > 1e-3  # the ensemble did change the output


def test_tta_runs_other_architectures_and_channels() -> None:
    """SRVGGNetCompact, a grey image through an RGB model and an RGBA image keep their shapes."""
    net = SRVGGNetCompact(CompactConfig(num_features=8, num_convs=2, upscale=2)).eval()
    up = Upscaler(net, UpscaleOptions(tile=0, tta=True, **FP32))
    assert up.upscale(random_image(9, 7, None)).shape == (18, 14)
    rgba = up.upscale(random_image(9, 7, 4))
    assert rgba.shape == (18, 14, 4) and rgba.dtype == np.uint8


@pytest.mark.slow
def test_tiled_tta_on_real_weights_is_within_the_halo_bound() -> None:
    """With the model's measured halo (smaller than its receptive radius), tiles differ from
    the whole image by at most the halo's error bound, with the ensemble as without it."""
    from skimage import data

    from esrgan_plugin.models.loading import load_model

    model = load_model("default-psnr")
    photo = data.rocket()[150:222, 200:270]
    x = torch.from_numpy(photo.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    whole = Upscaler(model, UpscaleOptions(tile=0, tta=True, **FP32)).upscale_tensor(x)
    tiled_up = Upscaler(model, UpscaleOptions(tile=32, tta=True, **FP32))
    assert tiled_up.halo < receptive_radius(model.config)  # type: ignore[arg-type]
    error = (whole - tiled_up.upscale_tensor(x)).abs().max().item()
    assert error <= HALO_BOUND, f"{error * 255:.2f}/255"
