"""Fuzzing image files: valid files of every codec, then truncated, bit-flipped, renamed, or with
headers that declare other (or huge) sizes, read by ``read_image`` and ``probe_image``."""

from __future__ import annotations

import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
from hypothesis import event, given
from hypothesis import strategies as st
from properties import result_or_error

from pipelines.errors import ImageIOError
from pipelines.io.images import read_image
from pipelines.io.probe import probe_image

MAX_PIXELS = 1 << 20
"""The pixel limit the fuzzed reads run under (huge declared sizes must be refused by it)."""

CODECS = (".png", ".jpg", ".webp", ".tif", ".bmp")


@st.composite
def images(draw: st.DrawFn) -> tuple[str, bytes]:
    """A small valid image file: (suffix, bytes) in any codec, bit depth and channel count."""
    suffix = draw(st.sampled_from(CODECS))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    channels = draw(st.sampled_from((1, 3, 4) if suffix in (".png", ".tif", ".webp") else (1, 3)))
    deep = suffix in (".png", ".tif") and draw(st.booleans())
    dtype = np.uint16 if deep else np.uint8
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = (h, w) if channels == 1 else (h, w, channels)
    pixels = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)
    ok, encoded = cv2.imencode(suffix, pixels)
    assert ok
    return suffix, encoded.tobytes()


def _png_with_header(data: bytes, width: int, height: int, depth: int, colour: int) -> bytes:
    """``data`` with its IHDR fields replaced and the chunk's CRC recomputed (a valid header)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return data
    body = struct.pack(">IIBB", width, height, depth, colour) + data[26:29]
    return data[:16] + body + struct.pack(">I", zlib.crc32(b"IHDR" + body)) + data[33:]


def _bmp_with_size(data: bytes, width: int, height: int) -> bytes:
    if data[:2] != b"BM" or len(data) < 26:
        return data
    return data[:18] + struct.pack("<ii", width, height) + data[26:]


def _jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0 and at + 9 <= len(data):
            return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]
    return data


dimension = st.one_of(st.integers(0, 64), st.integers(0, 2**31 - 1), st.just(2**32 - 1))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid image file, then one to three mutations of its bytes, header or name."""
    suffix, data = draw(images())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(("truncate", "flip", "insert", "header", "rename", "zero-tail"))
        )
        if kind == "truncate" and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif kind == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
        elif kind == "header":
            width, height = draw(dimension), draw(dimension)
            data = _png_with_header(
                data,
                width,
                height,
                draw(st.sampled_from((1, 2, 4, 8, 16, 3, 0, 255))),
                draw(st.sampled_from((0, 2, 3, 4, 6, 1, 7, 255))),
            )
            signed = min(width, 2**31 - 1) * draw(st.sampled_from((1, -1)))
            data = _bmp_with_size(data, signed, min(height, 2**31 - 1))
            data = _jpeg_with_size(data, min(width, 65535), min(height, 65535))
        elif kind == "rename":
            suffix = draw(st.sampled_from(CODECS + (".jpeg", ".tiff", ".gif", "")))
        elif kind == "zero-tail" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes(len(data) - at)
    return suffix, data


def _check_decoded(array: np.ndarray) -> None:
    assert array.dtype in (np.uint8, np.uint16)
    assert array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)), array.shape
    assert array.shape[0] * array.shape[1] <= MAX_PIXELS, array.shape
    assert array.flags.c_contiguous


@given(mutated())
def test_read_image_returns_pixels_or_one_line_error(case: tuple[str, bytes]) -> None:
    """read_image and probe_image: a valid array (within the pixel limit) or an ImageIOError."""
    suffix, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzzed{suffix}"
        path.write_bytes(data)
        array = result_or_error(lambda: read_image(path, MAX_PIXELS), ImageIOError)
        probed = result_or_error(lambda: probe_image(path, MAX_PIXELS), ImageIOError)
        event(f"read: {type(array).__name__}, probe: {type(probed).__name__}")
        if isinstance(array, np.ndarray):
            _check_decoded(array)
        if isinstance(array, np.ndarray) and not isinstance(probed, BaseException):
            shape, dtype = probed
            assert (tuple(shape), np.dtype(dtype)) == (array.shape, array.dtype), (
                "probe_image disagrees with read_image"
            )
        assert path.read_bytes() == data  # reading never changes the file


@given(images())
def test_valid_images_round_trip(case: tuple[str, bytes]) -> None:
    """Unmutated files decode, and probe_image predicts exactly what read_image returns."""
    suffix, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"valid{suffix}"
        path.write_bytes(data)
        array = read_image(path, MAX_PIXELS)
        _check_decoded(array)
        shape, dtype = probe_image(path, MAX_PIXELS)
        assert (tuple(shape), np.dtype(dtype)) == (array.shape, array.dtype)
