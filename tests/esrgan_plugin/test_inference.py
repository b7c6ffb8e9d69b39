"""The inference engine: tiling seams, bit depth, channels, alpha, outscale, precision, OOM."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch
from helpers import random_image, tiny_rrdbnet

from esrgan_plugin.arch.rrdbnet import receptive_radius
from esrgan_plugin.errors import InferenceError
from esrgan_plugin.inference import UpscaleOptions, Upscaler, upscale
from esrgan_plugin.tiles.grid import axis_spans, make_tiles


def smooth_image(h: int, w: int, c: int = 3) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    chans = [np.sin(xx / (3 + i)) * np.cos(yy / (4 + i)) * 0.5 + 0.5 for i in range(c)]
    return (np.stack(chans, -1) * 255).round().astype(np.uint8)


@pytest.mark.parametrize(("scale", "tile"), [(1, 48), (2, 24), (4, 16), (4, 24), (8, 16)])
def test_tiled_equals_whole_image_with_halo_at_receptive_radius(scale: int, tile: int) -> None:
    """The middle tiles' windows (tile + 2 halo) lie inside the image, so seams are possible:
    a halo of an eighth of the radius shows them; the receptive radius removes them."""
    net = tiny_rrdbnet(scale=scale)
    halo = receptive_radius(net.config)
    height = 3 * tile + 2 * halo + 5  # ragged: no size is a multiple of the tile
    image = random_image(height, height - 8)
    whole = upscale(image, net, tile=0)
    tiled = upscale(image, net, tile=tile, halo=halo, batch_size=3)
    short = upscale(image, net, tile=tile, halo=halo // 8, batch_size=3)
    assert whole.shape == (height * scale, (height - 8) * scale, 3)
    assert np.abs(whole.astype(int) - tiled).max() <= 1  # 1/255: float rounding at .5 boundaries
    assert np.abs(whole.astype(int) - short).max() > 1


def test_tiled_float_output_matches_whole_to_1e5() -> None:
    net = tiny_rrdbnet(scale=4)
    up = Upscaler(net, UpscaleOptions(tile=0))
    x = torch.rand(1, 3, 3 * 16 + 2 * receptive_radius(net.config) + 3, 61)
    whole = up.upscale_tensor(x)
    tiled = Upscaler(
        net, UpscaleOptions(tile=16, halo=receptive_radius(net.config))
    ).upscale_tensor(x)
    assert (whole - tiled).abs().max().item() < 1e-5


def test_tiles_cover_image_exactly_once() -> None:
    tiles = make_tiles(50, 23, 16, 5, multiple=4)
    covered = np.zeros((50, 23), int)
    for t in tiles:
        covered[t.rows.start : t.rows.stop, t.cols.start : t.cols.stop] += 1
        assert t.rows.padded_start % 4 == 0 and t.cols.padded_start % 4 == 0
    assert (covered == 1).all()
    assert axis_spans(10, 16, 8)[0].padded_stop == 10


def test_progress_reports_every_tile() -> None:
    seen: list[tuple[int, int]] = []
    upscale(
        random_image(40, 40),
        tiny_rrdbnet(),
        progress=lambda d, t: seen.append((d, t)),
        tile=16,
        halo=4,
        batch_size=2,
    )
    assert seen[-1] == (9, 9)


def test_sixteen_bit_rgba_keeps_depth_and_alpha() -> None:
    image = random_image(12, 10, 4, np.uint16)
    image[..., 3] = np.linspace(0, 65535, 10, dtype=np.uint16)[None, :]
    for mode in ("model", "bicubic"):
        out = upscale(image, tiny_rrdbnet(), alpha_mode=mode, tile=0)
        assert out.dtype == np.uint16 and out.shape == (48, 40, 4)
        assert np.unique(out[..., :3]).size > 256  # really 16-bit, not 8-bit scaled up


def test_opaque_alpha_stays_exactly_opaque() -> None:
    image = random_image(8, 8, 4)
    image[..., 3] = 255
    out = upscale(image, tiny_rrdbnet(), tile=0)
    assert (out[..., 3] == 255).all()


def test_bicubic_alpha_follows_the_input_alpha() -> None:
    image = smooth_image(16, 16, 4)
    out = upscale(image, tiny_rrdbnet(), alpha_mode="bicubic", tile=0)
    import cv2

    expected = cv2.resize(image[..., 3], (64, 64), interpolation=cv2.INTER_CUBIC)
    assert np.abs(out[..., 3].astype(int) - expected).max() <= 1


@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 1)])
def test_grey_images_keep_their_shape(shape: tuple[int, ...]) -> None:
    image = random_image(9, 7, None).reshape(shape)
    out = upscale(image, tiny_rrdbnet(), tile=0)
    assert out.shape == (36, 28) + shape[2:] and out.dtype == np.uint8


def test_grey_model_on_rgb_image_runs_per_channel() -> None:
    out = upscale(random_image(6, 6), tiny_rrdbnet(in_ch=1, out_ch=1), tile=0)
    assert out.shape == (24, 24, 3)


def test_one_pixel_image() -> None:
    for scale in (1, 2, 4):
        assert upscale(random_image(1, 1), tiny_rrdbnet(scale=scale), tile=0).shape == (
            scale,
            scale,
            3,
        )


def test_float_images_stay_float_in_range() -> None:
    out = upscale(np.random.rand(5, 6, 3).astype(np.float32), tiny_rrdbnet(), tile=0)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(("outscale", "shape"), [(3.5, (35, 28)), (2.0, (20, 16)), (4.0, (40, 32))])
def test_outscale_resizes_after_the_model(outscale: float, shape: tuple[int, int]) -> None:
    out = upscale(smooth_image(10, 8), tiny_rrdbnet(), outscale=outscale, tile=0)
    assert out.shape[:2] == shape


def test_bf16_is_close_to_fp32_on_cpu() -> None:
    net = tiny_rrdbnet()
    image = smooth_image(16, 16)
    a = upscale(image, net, tile=0, precision="fp32").astype(float)
    b = upscale(image, net, tile=0, precision="bf16").astype(float)
    assert np.abs(a - b).mean() < 3.0


def test_invalid_options_have_clear_errors() -> None:
    net = tiny_rrdbnet()
    with pytest.raises(InferenceError, match="fp16 is not supported on the CPU"):
        Upscaler(net, UpscaleOptions(precision="fp16", device="cpu"))
    with pytest.raises(InferenceError, match="precision 'fp64' is not one of 'auto', 'fp32'"):
        upscale(np.zeros((4, 4, 3), np.uint8), net, precision="fp64", device="cpu")
    with pytest.raises(InferenceError, match="device: must be one of auto, cpu"):
        upscale(np.zeros((4, 4, 3), np.uint8), net, device="tpu")
    for kwargs in (
        {"tile": -1},
        {"tile": 3},
        {"halo": -2},
        {"outscale": 0.0},
        {"alpha_mode": "magic"},
    ):
        with pytest.raises(InferenceError, match=f"^{next(iter(kwargs))}"):
            UpscaleOptions.checked(**kwargs)
        with pytest.raises(pydantic.ValidationError):
            UpscaleOptions(**kwargs)
    with pytest.raises(InferenceError, match="shape"):
        upscale(np.zeros((4, 4, 2), np.uint8), net)
    with pytest.raises(InferenceError, match="empty"):
        upscale(np.zeros((0, 4, 3), np.uint8), net)
    with pytest.raises(InferenceError, match="dtype"):
        upscale(np.zeros((4, 4, 3), np.int32), net)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_request_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(InferenceError, match="CUDA is not available"):
        Upscaler(tiny_rrdbnet(), UpscaleOptions(device="cuda"))


def test_out_of_memory_halves_the_tile_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    net = tiny_rrdbnet()
    up = Upscaler(net, UpscaleOptions(tile=0, halo=8))
    real_forward = up._forward
    sizes: list[int] = []

    def limited(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(batch.shape[-1])
        if batch.shape[-1] > 40:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real_forward(batch)

    monkeypatch.setattr(up, "_forward", limited)
    image = random_image(64, 64)
    out = up.upscale(image)
    expected = upscale(image, net, tile=0)
    assert sizes[0] == 64 and max(sizes[1:]) <= 40
    assert np.abs(out.astype(int) - expected).max() <= 3  # halo 8 < receptive radius


def test_model_alpha_of_a_block_matches_the_whole_image() -> None:
    """No per-call shortcut for uniform alpha: a fully opaque block (as a Dask chunk sees it)
    gets the same alpha as that region of the whole, partly transparent image."""
    net = tiny_rrdbnet()
    radius = receptive_radius(net.config)
    image = random_image(64, 64, 4)
    image[..., 3] = 255
    image[:8, :8, 3] = 0
    whole = upscale(image, net, alpha_mode="model", tile=0)
    start = 64 - 21 - radius  # the block with its halo is entirely opaque
    block = upscale(image[start:, start:], net, alpha_mode="model", tile=0)
    kept = (64 - 21) * 4
    assert np.abs(whole[kept:, kept:].astype(int) - block[radius * 4 :, radius * 4 :]).max() <= 1


def test_a_loaded_models_module_is_shared_only_with_engines_that_read_it() -> None:
    """The openvino and onednn engines only read the module: a loaded model's is shared (no copy
    of the weights); the pytorch engine moves it in place, and a caller's module in training
    mode must stay as it was, so those are copied."""
    from esrgan_plugin.models.loaded import LoadedModel

    net = tiny_rrdbnet().eval().requires_grad_(False)
    loaded = LoadedModel(net, "canonical", net.config, {}, "test")
    shared = Upscaler(loaded, UpscaleOptions(engine="onednn", precision="fp32", tile=0))
    assert shared.module is net
    copied = Upscaler(loaded, UpscaleOptions(engine="pytorch", precision="fp32", tile=0))
    assert copied.module is not net
    training = tiny_rrdbnet().train()
    Upscaler(training, UpscaleOptions(engine="onednn", precision="fp32", tile=0))
    assert training.training and all(p.requires_grad for p in training.parameters())
