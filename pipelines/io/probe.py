"""An image file's array shape and dtype, from its header where that is reliable.

The runner needs each image's shape before decoding it (Dask arrays are lazy). PNG headers
(IHDR) and JPEG headers say exactly what the decoder will return; other formats, and PNG
variants whose decoded channel count depends on the decoder (palette, tRNS), are decoded once.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np

from pipelines.io.images import read_checked_header, read_image

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 4, 6: 4}  # grey, RGB, grey+alpha (decoded as RGBA), RGBA
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def probe_image(path: str | os.PathLike[str], max_pixels: int) -> tuple[tuple[int, ...], np.dtype]:
    """Shape ((H, W) or (H, W, C)) and dtype that ``read_image(path)`` will return."""
    path = Path(path)
    width, height, orientation = read_checked_header(path, max_pixels)
    if orientation in _TRANSPOSED:
        width, height = height, width
    layout = _png_layout(path) if path.suffix.lower() == ".png" else _jpeg_layout(path)
    if layout is None:
        array = read_image(path, max_pixels)
        return array.shape, array.dtype
    channels, dtype = layout
    shape = (height, width) if channels == 1 else (height, width, channels)
    return shape, dtype


def _png_layout(path: Path) -> tuple[int, np.dtype] | None:
    """(channels, dtype) from the IHDR chunk, or None when the decoder decides (palette, tRNS)."""
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return None
        bit_depth = colour_type = -1
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            length, kind = struct.unpack(">I4s", header)
            if kind == b"IHDR":
                data = f.read(length)
                bit_depth, colour_type = data[8], data[9]
                f.seek(4, os.SEEK_CUR)
            elif kind == b"tRNS":
                return None
            elif kind == b"IDAT":
                break
            else:
                f.seek(length + 4, os.SEEK_CUR)
    if colour_type not in _PNG_CHANNELS:
        return None
    return _PNG_CHANNELS[colour_type], np.dtype(np.uint16 if bit_depth == 16 else np.uint8)


def _jpeg_layout(path: Path) -> tuple[int, np.dtype] | None:
    """JPEGs decode to 8-bit grey or RGB; None for any other format."""
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return None
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a damaged file warns here; the decoder says what is wrong
        with Image.open(path) as img:
            if img.format != "JPEG":
                return None
            return (1 if img.mode == "L" else 3), np.dtype(np.uint8)
