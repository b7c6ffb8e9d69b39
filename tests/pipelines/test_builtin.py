"""The built-in stages: read (header probe), write (bit depth, alpha, no overwrite), denoise, resize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import random_image
from PIL import Image

from pipelines.builtin.denoise import DenoiseParams, denoise, denoise_halo
from pipelines.builtin.files import ReadParams, WriteParams, read_images, write_images
from pipelines.builtin.resize import ResizeParams, resize, resize_halo
from pipelines.errors import ImageIOError
from pipelines.imresize import imresize
from pipelines.io.images import read_image, write_image
from pipelines.io.probe import probe_image
from pipelines.runner.tasks import StepError
from pipelines.testing import image_item, run_text


def _pil(tmp_path: Path, name: str, mode: str, **save: object) -> Path:
    path = tmp_path / name
    Image.new(mode, (7, 5)).save(path, **save)
    return path


def test_probe_matches_the_decoder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    exif = Image.new("RGB", (7, 5)).getexif()
    exif[0x0112] = 6  # rotated 90 degrees: width and height swap
    files = [
        _pil(tmp_path, "l.png", "L"),
        _pil(tmp_path, "la.png", "LA"),
        _pil(tmp_path, "p.png", "P"),
        _pil(tmp_path, "pt.png", "P", transparency=0),
        _pil(tmp_path, "i16.png", "I;16"),
        _pil(tmp_path, "cmyk.jpg", "CMYK"),
        _pil(tmp_path, "rot.jpg", "RGB", exif=exif),
        write_image(tmp_path / "rgba16.png", rng.integers(0, 65535, (5, 7, 4)).astype(np.uint16)),
        write_image(tmp_path / "g.jpg", random_image(5, 7, None)),
        write_image(tmp_path / "t.tif", rng.integers(0, 65535, (5, 7, 3)).astype(np.uint16)),
    ]
    for path in files:
        shape, dtype = probe_image(path, 1 << 20)
        decoded = read_image(path)
        assert (shape, dtype) == (decoded.shape, decoded.dtype), path.name
    assert probe_image(tmp_path / "rot.jpg", 100)[0] == (7, 5, 3)


def test_read_is_lazy_and_refuses_bad_files_before_running(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", random_image(6, 4))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    items = read_images(ReadParams(path=str(tmp_path / "a.png")))
    assert items[0].data.shape == (6, 4, 3) and items[0].meta.name == "a"
    assert items[0].meta.bit_depth == 8 and items[0].meta.channels == 3
    np.testing.assert_array_equal(items[0].data.compute(), read_image(tmp_path / "a.png"))
    with pytest.raises(ImageIOError, match="bad.png"):
        read_images(ReadParams(path=str(tmp_path / "bad.png")))
    with pytest.raises(ImageIOError, match="over the limit"):
        read_images(ReadParams(path=str(tmp_path / "a.png"), max_pixels=10))
    with pytest.raises(ImageIOError, match="no such file"):
        read_images(ReadParams(path=str(tmp_path / "missing*.png")))


def _write(items: list, params: WriteParams) -> list[str]:
    import dask

    return list(dask.compute(*write_images(items, params)))


def test_write_keeps_bit_depth_and_alpha(tmp_path: Path) -> None:
    rgba16 = random_image(5, 6, 4, dtype=np.uint16)
    grey = random_image(5, 6, None)
    written = _write(
        [image_item(rgba16, "deep"), image_item(grey, "grey")],
        WriteParams(path=f"{tmp_path}/{{name}}.png"),
    )
    assert written == [str(tmp_path / "deep.png"), str(tmp_path / "grey.png")]
    np.testing.assert_array_equal(read_image(written[0]), rgba16)
    np.testing.assert_array_equal(read_image(written[1]), grey)


def test_write_refuses_existing_clashing_or_alpha_losing_outputs(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    target.write_bytes(b"keep me")
    item = image_item(random_image(4, 4), "x")
    with pytest.raises(ImageIOError, match="output exists"):
        write_images([item], WriteParams(path=f"{tmp_path}/{{name}}.png"))
    assert target.read_bytes() == b"keep me"
    _write([item], WriteParams(path=f"{tmp_path}/{{name}}.png", overwrite=True))
    assert read_image(target).shape == (4, 4, 3)
    with pytest.raises(ImageIOError, match="both"):
        write_images(
            [item, image_item(random_image(4, 4), "y")], WriteParams(path=f"{tmp_path}/same.png")
        )
    with pytest.raises(ImageIOError, match="alpha"):
        write_images(
            [image_item(random_image(4, 4, 4), "a")], WriteParams(path=f"{tmp_path}/a.jpg")
        )
    assert not list(tmp_path.glob(".*.tmp"))


def test_unwritable_output_is_a_clear_step_error(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", random_image(4, 4))
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(
        StepError, match=r"step 'out' \(builtin.write\): ImageIOError: .*cannot write output"
    ):
        run_text(f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/a.png"}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/file/{{name}}.png"}}}}
        """)
    assert (tmp_path / "file").read_text() == "not a folder"


@pytest.mark.parametrize(
    "params",
    [
        DenoiseParams(method="gaussian", sigma=1.5),
        DenoiseParams(method="median", size=3),
        DenoiseParams(method="bilateral", sigma_spatial=1.0),
        DenoiseParams(method="nl_means", patch_size=3, patch_distance=2),
        DenoiseParams(method="tv", weight=0.05, max_num_iter=20),
    ],
    ids=lambda p: p.method,
)
def test_denoise_methods_keep_dtype_and_alpha_and_reduce_noise(params: DenoiseParams) -> None:
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(10000, 50000, 24), (20, 1)).astype(np.uint16)
    noisy = np.clip(clean + rng.normal(0, 3000, clean.shape), 0, 65535).astype(np.uint16)
    alpha = rng.integers(0, 65535, clean.shape).astype(np.uint16)
    rgba = np.stack([noisy, noisy, noisy, alpha], axis=2)
    out = denoise(rgba, params)
    assert out.dtype == np.uint16 and out.shape == rgba.shape
    np.testing.assert_array_equal(out[..., 3], alpha)
    error_before = np.abs(noisy.astype(float) - clean).mean()
    assert np.abs(out[..., 0].astype(float) - clean).mean() < 0.9 * error_before
    assert denoise(noisy[..., None], params).shape == (20, 24, 1)


def test_gaussian_on_a_crop_with_its_halo_matches_the_whole_image() -> None:
    image = random_image(40, 40)
    params = DenoiseParams(method="gaussian", sigma=1.2)
    halo = denoise_halo(params)
    assert halo == 5
    whole = denoise(image, params)
    crop = denoise(image[10 - halo : 30 + halo, 10 - halo : 30 + halo], params)
    np.testing.assert_array_equal(crop[halo:-halo, halo:-halo], whole[10:30, 10:30])


def test_denoise_halos_follow_the_parameters() -> None:
    assert denoise_halo(DenoiseParams(method="median", size=7)) == 3
    assert denoise_halo(DenoiseParams(method="bilateral", sigma_spatial=2)) == 6
    assert denoise_halo(DenoiseParams(method="nl_means", patch_size=5, patch_distance=4)) == 6
    with pytest.raises(ValueError, match="odd"):
        DenoiseParams(method="median", size=4)


def test_resize_is_matlab_imresize_with_scale_or_size() -> None:
    image = random_image(9, 12)
    np.testing.assert_array_equal(
        resize(image, ResizeParams(scale=0.5)), imresize(image, scale=0.5)
    )
    assert resize(image, ResizeParams(width=24)).shape == (18, 24, 3)
    assert resize(image.astype(np.float32) / 255, ResizeParams(height=3)).dtype == np.float32
    assert resize_halo(ResizeParams(scale=0.25)) == 8 and resize_halo(ResizeParams(scale=2)) == 2
    with pytest.raises(ValueError, match="either scale or width/height"):
        ResizeParams(scale=2, width=4)
    with pytest.raises(ValueError, match="either scale or width/height"):
        ResizeParams()


def test_resize_in_a_pipeline_predicts_the_output_size(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", random_image(6, 5, None, dtype=np.uint16))
    summary = run_text(f"""
    steps:
      - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/a.png"}}}}
      - {{id: big, uses: builtin.resize, with: {{scale: 2}}}}
      - {{id: small, uses: builtin.resize, with: {{width: 3}}}}
      - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out/{{name}}.png"}}}}
    """)
    out = read_image(summary.written[0])
    assert out.shape == (4, 3) and out.dtype == np.uint16


@pytest.mark.parametrize("method", ["bilateral", "nl_means"])
def test_default_denoisers_improve_a_noisy_photo(method: str) -> None:
    """Regression: scikit-image's bilateral filter with its default spread cost 9 dB on this photo."""
    from skimage import data

    clean = data.chelsea()[:96, :96].astype(float)
    noisy = np.clip(
        clean + np.random.default_rng(0).normal(0, 5, clean.shape) + 0.5, 0, 255
    ).astype(np.uint8)
    denoised = denoise(noisy, DenoiseParams(method=method)).astype(float)
    assert np.mean((denoised - clean) ** 2) < 0.8 * np.mean((noisy - clean) ** 2)


def test_a_still_gif_is_read_as_an_image(tmp_path: Path) -> None:
    """A GIF of one frame is an image to builtin.read (an animated one is a video)."""
    pixels = random_image(6, 5)
    Image.fromarray(pixels).save(tmp_path / "still.gif")
    summary = run_text(f"""
    steps:
      - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/still.gif"}}}}
      - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out/{{name}}.png"}}}}
    """)
    np.testing.assert_array_equal(
        read_image(summary.written[0]), read_image(tmp_path / "still.gif")
    )
