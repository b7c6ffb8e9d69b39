"""The PNG chunk helpers: walking, checking and adding chunks (checked against Pillow and libpng)."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipelines.io.images import png


def encoded(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def test_added_chunks_are_intact_and_before_the_image_data() -> None:
    data = png.add_chunks(
        encoded(np.zeros((3, 4, 3), np.uint8)),
        [png.itxt_chunk("Comment", "ünïcode"), (b"tEXt", b"Title\0plain")],
    )
    chunks = list(png.iter_chunks(data))
    kinds = [c.kind for c in chunks]
    assert kinds[:3] == [b"IHDR", b"iTXt", b"tEXt"] and kinds[-1] == b"IEND"
    assert all(c.crc_ok for c in chunks)
    with Image.open(__import__("io").BytesIO(data)) as img:
        assert img.info["Comment"] == "ünïcode" and img.info["Title"] == "plain"
    assert png.find_chunk(data, b"tEXt") == b"Title\0plain"


def test_decodable_stream_keeps_only_what_decides_the_pixels() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    data = png.add_chunks(
        encoded(grey), [(b"tRNS", struct.pack(">H", 5)), png.itxt_chunk("a", "b")]
    )
    stream = png.decodable_stream(data)
    assert [c.kind for c in png.iter_chunks(stream)] == [b"IHDR", b"tRNS", b"IDAT", b"IEND"]
    ours = cv2.imdecode(np.frombuffer(stream, np.uint8), cv2.IMREAD_UNCHANGED)
    theirs = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(ours, theirs)  # tRNS kept: grey + transparency decodes as it did


def test_out_of_range_transparency_is_dropped_as_libpng_ignores_it() -> None:
    """An 8-bit grey tRNS of 300 can match no pixel; libpng warns and we leave it out silently."""
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    data = png.add_chunks(encoded(grey), [(b"tRNS", struct.pack(">H", 300))])
    assert b"tRNS" not in png.decodable_stream(data)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:44], r"truncated PNG: the file ends at byte 44, inside the IDAT chunk"),
        (
            lambda d: d[:36],
            r"truncated PNG: the file ends at byte 36, inside the header of the chunk",
        ),
        (lambda d: d[:8] + d[33:], r"corrupt PNG: the first chunk is not IHDR"),
        (lambda d: b"GIF89a" + d[6:], r"not a PNG file"),
    ],
)
def test_damage_is_described(damage: object, message: str) -> None:
    data = encoded(np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(ValueError, match=message):
        png.decodable_stream(damage(data))  # type: ignore[operator]


def test_impossible_header_is_refused_before_libpng_sees_it() -> None:
    body = struct.pack(">IIBBBBB", 4, 4, 16, 3, 0, 0, 0)  # 16-bit palette does not exist
    data = (
        png.SIGNATURE
        + png.encode_chunk(b"IHDR", body)
        + png.encode_chunk(b"IDAT", zlib.compress(b"\0" * 40))
    )
    with pytest.raises(ValueError, match="bit depth 16 with colour type 3 is not valid"):
        png.decodable_stream(data)
    wide = struct.pack(">IIBBBBB", png.MAX_SIDE + 1, 1, 8, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="reads at most 1000000 pixels per side"):
        png.decodable_stream(png.SIGNATURE + png.encode_chunk(b"IHDR", wide))


def test_written_chunks_satisfy_libpng(tmp_path: Path) -> None:
    """libpng checks iCCP (profile header, colour space), eXIf and iTXt, and prints what it dislikes."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Cam"
    data = png.add_chunks(
        encoded(np.zeros((4, 4, 3), np.uint16)),
        [png.iccp_chunk(profile), png.exif_chunk(exif.tobytes()[6:]), png.itxt_chunk("k", "v")],
    )
    path = tmp_path / "a.png"
    path.write_bytes(data)
    code = "import cv2, sys; assert cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED) is not None"
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    with Image.open(path) as img:
        assert img.info["icc_profile"] == profile and img.getexif()[0x010F] == "Cam"
