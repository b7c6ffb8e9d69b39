"""Decoding damaged files: precise one-line errors, and nothing from the C libraries on stderr."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from clitools import run
from PIL import Image

from pipelines.errors import ImageIOError
from pipelines.io.images import png, read_image, read_metadata

ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
"""Interlace passes from the PNG specification: (x start, y start, x step, y step)."""


def pixels(h: int = 24, w: int = 31, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, c), dtype=np.uint8)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def interlaced_png(rgb: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit RGB PNG, written from the specification (filter 0 rows)."""
    h, w = rgb.shape[:2]
    raw = b"".join(
        b"\0" + row.tobytes() for x0, y0, dx, dy in ADAM7 for row in rgb[y0::dy, x0::dx] if row.size
    )
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return (
        png.SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg_with_junk_before_sos(array: np.ndarray) -> bytes:
    """A JPEG with bytes between two markers: libjpeg warns "N extraneous bytes before marker"."""
    data = cv2.imencode(".jpg", array)[1].tobytes()
    at = data.find(b"\xff\xda")
    return data[:at] + b"\x00\x11\x22" + data[at:]


def test_interlaced_png_is_decoded(tmp_path: Path) -> None:
    rgb = pixels(13, 11)
    path = tmp_path / "adam7.png"
    path.write_bytes(interlaced_png(rgb))
    np.testing.assert_array_equal(read_image(path), rgb)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ImageIOError, match="truncated PNG"):
        read_image(path)


def test_truncated_png_says_where_it_ends(tmp_path: Path, shared_images: Path) -> None:
    data = (shared_images / "rgba16_tree.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageIOError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: truncated PNG: the file ends at byte {len(data) // 2}, ")
    assert "inside the IDAT chunk that starts at byte" in message and "header" not in message


def test_png_whose_image_data_stops_early(tmp_path: Path) -> None:
    """Whole chunks, valid CRCs, but the zlib stream ends before the last rows."""
    rgb = pixels(20, 10)
    raw = b"".join(b"\0" + row.tobytes() for row in rgb[:12])
    header = struct.pack(">IIBBBBB", 10, 20, 8, 2, 0, 0, 0)
    path = tmp_path / "short.png"
    path.write_bytes(
        png.SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(
        ImageIOError,
        match=r"truncated PNG: the image data ends after 372 of 620 bytes \(rows 12 to 20",
    ):
        read_image(path)


def test_png_damage_is_named(tmp_path: Path) -> None:
    data = cv2.imencode(".png", pixels())[1].tobytes()
    at = data.find(b"IDAT") + 20
    flipped = data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]
    path = tmp_path / "flip.png"
    path.write_bytes(flipped)
    with pytest.raises(
        ImageIOError, match=r"corrupt PNG: the IDAT chunk at byte 33 fails its CRC check"
    ):
        read_image(path)


def test_damaged_ancillary_chunk_is_ignored(tmp_path: Path) -> None:
    """A broken colour profile (libpng: "iCCP: too short") does not stop the pixels."""
    rgb = pixels()
    data = png.add_chunks(
        cv2.imencode(".png", rgb[..., ::-1])[1].tobytes(),
        [(b"iCCP", b"x\0\0" + zlib.compress(b"junk"))],
    )
    path = tmp_path / "badicc.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_image(path), rgb)


def test_exif_stored_after_the_image_data_is_found_without_decoding(tmp_path: Path) -> None:
    rgb = pixels(4, 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Late"
    data = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
    end = data.rfind(b"IEND") - 4
    path = tmp_path / "late.png"
    path.write_bytes(data[:end] + chunk(b"eXIf", exif.tobytes()[6:]) + data[end:])
    assert read_image(path).shape == (6, 4, 3)  # orientation 6 applied
    assert read_metadata(path).exif is not None


def test_truncated_jpeg_is_one_precise_error(tmp_path: Path, shared_images: Path) -> None:
    data = (shared_images / "jpeg_0014.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageIOError, match="truncated JPEG"):
        read_image(path)


def test_corrupt_jpeg_prints_nothing_on_stderr(tmp_path: Path) -> None:
    """libjpeg's "Corrupt JPEG data" warning stays inside the decoder (OpenCV printed it)."""
    rgb = pixels(16, 16)
    path = tmp_path / "junk.jpg"
    path.write_bytes(jpeg_with_junk_before_sos(rgb))
    code = textwrap.dedent(
        f"""
        from pipelines.io.images import read_image
        print(read_image({str(path)!r}).shape)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "(16, 16, 3)", proc.stderr
    assert proc.stderr == ""
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(cv2.imencode(".jpg", rgb)[1].tobytes())
    np.testing.assert_array_equal(read_image(path), read_image(plain))


def test_pipelines_run_reports_a_corrupt_jpeg_in_one_line(tmp_path: Path) -> None:
    """A JPEG that makes libjpeg warn and then fails: stderr holds the one-line error only."""
    data = jpeg_with_junk_before_sos(pixels(64, 64))
    (tmp_path / "bad.jpg").write_bytes(data[: len(data) * 3 // 4])
    (tmp_path / "run.yaml").write_text(
        "steps:\n"
        f"  - {{id: src, uses: builtin.read, with: {{path: '{tmp_path}/bad.jpg'}}}}\n"
        f"  - {{id: out, uses: builtin.write, with: {{path: '{tmp_path}/out/{{name}}.png'}}}}\n"
    )
    proc = run("pipelines", "run", str(tmp_path / "run.yaml"))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "%" not in line]
    assert len(lines) == 1, proc.stderr
    assert "bad.jpg: truncated JPEG" in lines[0] and "Corrupt JPEG" not in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_many_damaged_files_print_nothing(tmp_path: Path) -> None:
    """Truncations and bit flips of every codec: errors are raised, never printed by C code."""
    rng = np.random.default_rng(7)
    files = []
    for n, ext in enumerate((".png", ".jpg", ".webp", ".tif", ".bmp") * 8):
        dtype = np.uint16 if ext in (".png", ".tif") and n % 2 else np.uint8
        array = rng.integers(0, np.iinfo(dtype).max, size=(9, 13, 3), dtype=dtype)
        data = bytearray(cv2.imencode(ext, array)[1].tobytes())
        if n % 3 == 0:
            data = data[: rng.integers(8, len(data))]
        else:
            for at in rng.integers(0, len(data), size=1 + n % 4):
                data[at] ^= int(rng.integers(1, 256))
        files.append(tmp_path / f"f{n}{ext}")
        files[-1].write_bytes(bytes(data))
    files.append(tmp_path / "junk.jpg")
    files[-1].write_bytes(jpeg_with_junk_before_sos(pixels()))
    code = textwrap.dedent(
        """
        import sys
        from pipelines.errors import ImageIOError
        from pipelines.io.images import read_image, read_metadata
        from pipelines.io.probe import probe_image
        failed = 0
        for name in sys.argv[1:]:
            for call in (read_image, read_metadata, lambda p: probe_image(p, 1 << 20)):
                try:
                    call(name)
                except ImageIOError:
                    failed += 1
        print(failed)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 0  # the damage was real
    assert proc.stderr == ""


def test_jpeg_pixels_are_what_opencv_and_pillow_decode(tmp_path: Path, shared_images: Path) -> None:
    """Decoding JPEGs with Pillow changed no pixel: same values, RGB order, grey stays grey."""
    coloured = tmp_path / "coloured.jpg"
    gradient = np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3).astype(np.uint8)
    gradient[..., 0] = 250  # channels that differ, so a swap of R and B shows
    cv2.imwrite(str(coloured), gradient)
    for path in (coloured, shared_images / "jpeg_0014.jpg", shared_images / "gray_wolf.jpg"):
        ours = read_image(path)
        opencv = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        assert opencv is not None
        if opencv.ndim == 3:
            opencv = cv2.cvtColor(opencv, cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(ours, opencv)
        with Image.open(path) as img:
            np.testing.assert_array_equal(ours, np.asarray(img))
    assert read_image(coloured)[..., 2].min() >= 240  # blue was written as 250 in BGR order
