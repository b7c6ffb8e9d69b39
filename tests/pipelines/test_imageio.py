"""Image files: bit depth, alpha, EXIF orientation, bad files, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from pipelines.errors import ImageIOError
from pipelines.io.images import expand_inputs, read_image, write_image


def test_sixteen_bit_rgba_png_is_read_at_16_bits(shared_images: Path) -> None:
    image = read_image(shared_images / "rgba16_tree.png")
    assert image.dtype == np.uint16 and image.shape == (256, 342, 4)
    assert (image % 257 != 0).any()  # not 8-bit data scaled up


def test_sixteen_bit_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for channels in (None, 3, 4):
        shape = (7, 5) if channels is None else (7, 5, channels)
        image = rng.integers(0, 65536, size=shape, dtype=np.uint16)
        path = write_image(tmp_path / f"im{channels}.png", image)
        np.testing.assert_array_equal(read_image(path), image)


def test_grey_and_rgba_samples(shared_images: Path) -> None:
    assert read_image(shared_images / "gray_00017.png").ndim == 2
    assert read_image(shared_images / "gray_wolf.jpg").ndim == 2
    rgba = read_image(shared_images / "rgba_children.png")
    assert rgba.shape[2] == 4 and rgba.dtype == np.uint8


def test_rgb_channel_order_matches_pillow(shared_images: Path) -> None:
    path = shared_images / "set14_comic_lr_x4.png"
    np.testing.assert_array_equal(read_image(path), np.asarray(Image.open(path).convert("RGB")))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    img.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    np.testing.assert_array_equal(read_image(path), expected)


def test_truncated_file_is_a_clear_error(tmp_path: Path, shared_images: Path) -> None:
    for name in ("rgba16_tree.png", "jpeg_0014.jpg"):
        data = (shared_images / name).read_bytes()
        path = tmp_path / name
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageIOError, match=str(path)):
            read_image(path)


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(ImageIOError, match="not a supported image format"):
        read_image(path)
    with pytest.raises(ImageIOError, match="no such image"):
        read_image(tmp_path / "missing.png")


def test_pixel_limit_refuses_before_decoding(tmp_path: Path) -> None:
    path = write_image(tmp_path / "big.png", np.zeros((100, 100), np.uint8))
    with pytest.raises(ImageIOError, match="over the limit of 5000"):
        read_image(path, max_pixels=5000)


def test_write_refuses_to_overwrite_and_leaves_no_temp(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.png", np.zeros((3, 3, 3), np.uint8))
    before = path.read_bytes()
    with pytest.raises(ImageIOError, match="output exists"):
        write_image(path, np.ones((3, 3, 3), np.uint8))
    assert path.read_bytes() == before
    write_image(path, np.ones((3, 3, 3), np.uint8), overwrite=True)
    assert path.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageIOError, match="alpha"):
        write_image(tmp_path / "a.jpg", np.zeros((3, 3, 4), np.uint8))
    with pytest.raises(ImageIOError, match="cannot write .xyz"):
        write_image(tmp_path / "a.xyz", np.zeros((3, 3, 3), np.uint8))
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(ImageIOError, match="cannot write output"):
        write_image(folder / "a.png", np.zeros((3, 3, 3), np.uint8))


def test_output_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ImageIOError, match="cannot write output"):
        write_image(blocker / "a.png", np.zeros((3, 3, 3), np.uint8))


def test_sixteen_bit_to_jpeg_is_rounded_to_8_bits(tmp_path: Path) -> None:
    image = np.full((4, 4, 3), 65535, np.uint16)
    out = read_image(write_image(tmp_path / "a.jpg", image))
    assert out.dtype == np.uint8 and out.min() >= 254


def test_expand_inputs_files_globs_folders(tmp_path: Path) -> None:
    for name in ("a.png", "b.jpg", "sub/c.png", "notes.txt"):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    found = list(expand_inputs([str(tmp_path)]))
    assert [p.name for p in found] == ["a.png", "b.jpg", "c.png"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.png"), str(tmp_path / "a.png")])] == [
        "a.png"
    ]
    with pytest.raises(ImageIOError, match="no such file"):
        list(expand_inputs([str(tmp_path / "*.tif")]))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:96, :128])


def test_jpeg_quality_defaults_to_95_and_lower_costs_size_and_fidelity(
    tmp_path: Path, photo: np.ndarray
) -> None:
    default = write_image(tmp_path / "default.jpg", photo)
    q95 = write_image(tmp_path / "q95.jpg", photo, quality=95)
    q40 = write_image(tmp_path / "q40.jpg", photo, quality=40)
    assert default.read_bytes() == q95.read_bytes()
    assert q40.stat().st_size < 0.6 * default.stat().st_size
    assert _psnr(read_image(q40), photo) < _psnr(read_image(default), photo) - 3


def test_webp_is_lossless_by_default_and_lossy_with_a_quality(
    tmp_path: Path, photo: np.ndarray
) -> None:
    lossless = write_image(tmp_path / "lossless.webp", photo)
    np.testing.assert_array_equal(read_image(lossless), photo)
    lossy = write_image(tmp_path / "q80.webp", photo, quality=80)
    decoded = read_image(lossy)
    assert not np.array_equal(decoded, photo) and _psnr(decoded, photo) > 28
    assert lossy.stat().st_size < 0.5 * lossless.stat().st_size


def test_lossless_formats_ignore_quality(tmp_path: Path, photo: np.ndarray) -> None:
    for ext in ("png", "tif", "bmp"):
        plain = write_image(tmp_path / f"plain.{ext}", photo)
        given = write_image(tmp_path / f"given.{ext}", photo, quality=10)
        assert plain.read_bytes() == given.read_bytes(), ext


@pytest.mark.parametrize("quality", [0, 101, 50.0])
def test_quality_out_of_range_is_refused_and_nothing_written(
    tmp_path: Path, quality: object
) -> None:
    target = tmp_path / "a.jpg"
    with pytest.raises(
        ImageIOError, match=rf"a\.jpg: quality {quality!r} is out of range; expected 1 to 100"
    ):
        write_image(target, np.zeros((4, 4, 3), np.uint8), quality=quality)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_gif_of_one_frame_is_a_still_image_and_an_animated_one_is_not(tmp_path: Path) -> None:
    from pipelines.io.images import is_still_image

    frames = [Image.fromarray(np.full((6, 8, 3), 60 * n, np.uint8)) for n in range(3)]
    frames[0].save(tmp_path / "still.gif")
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    (tmp_path / "broken.gif").write_bytes(b"GIF89a\x00")
    assert is_still_image(tmp_path / "still.gif")
    assert not is_still_image(tmp_path / "anim.gif")
    assert not is_still_image(tmp_path / "broken.gif")
    assert not is_still_image(write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8)))
    np.testing.assert_array_equal(read_image(tmp_path / "still.gif"), np.asarray(frames[0]))
