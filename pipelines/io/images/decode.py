"""Decoding an image file's pixels to an array of its own bit depth, without noise on stderr.

OpenCV decodes PNG (8 and 16 bits; Pillow reduces 16-bit colour to 8 bits), TIFF, WebP and
BMP; Pillow decodes JPEG (the same libjpeg-turbo results, but libjpeg's warnings such as
"Corrupt JPEG data: N extraneous bytes before marker" stay inside Pillow, where OpenCV lets
libjpeg print them on stderr) and what OpenCV cannot (GIF, ...). A PNG is checked chunk by
chunk first (:mod:`pipelines.io.images.png`): a damaged file gets a precise message, and
libpng only sees the chunks that decide the pixels, so it has nothing to print either.
OpenCV's own log is silenced: failures become one-line :class:`ImageIOError` messages.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from pipelines.errors import ImageIOError
from pipelines.io.images import png

_TIFF_SIGNATURES = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def decode_pixels(path: Path) -> np.ndarray:
    """The pixels of ``path``: (H, W) grey or (H, W, 3|4) RGB(A), uint8 or uint16, as stored."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageIOError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if data.startswith(png.SIGNATURE):
        try:
            stream = png.decodable_stream(data)
        except ValueError as exc:
            raise ImageIOError(f"{path}: {exc}") from None
        array = _opencv(stream)
    elif data[:3] == b"\xff\xd8\xff":
        decoded = _jpeg(path, data)
        if decoded is not None:
            return decoded  # already grey or RGB
        array = _opencv(data)  # CMYK and YCCK: OpenCV's conversion to RGB, as always
    else:
        array = _opencv(data)
        if array is None and data[:4] in _TIFF_SIGNATURES:
            raise ImageIOError(
                f"{path}: corrupt TIFF, or a TIFF layout the decoder does not support"
            )
    if array is None:
        return _decode_with_pillow(path)
    return _normalised(array, path)


def _opencv(data: bytes) -> np.ndarray | None:
    """OpenCV's decoding as stored (any depth, no EXIF rotation), BGR(A) order; None if it fails."""
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    buffer = np.frombuffer(data, dtype=np.uint8)
    if not buffer.size:
        return None
    try:
        return cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        return None


def _normalised(array: np.ndarray, path: Path) -> np.ndarray:
    """OpenCV's array as RGB(A)/grey, uint8 or uint16, C-contiguous."""
    import cv2

    if array.dtype not in (np.uint8, np.uint16):
        array = _to_uint16(array, path)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB
        array = cv2.cvtColor(array, code)
    return np.ascontiguousarray(array)


def _jpeg(path: Path, data: bytes) -> np.ndarray | None:
    """A grey or RGB JPEG decoded by Pillow; None for other colour spaces (CMYK, YCCK)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                if img.mode not in ("L", "RGB"):
                    return None
                img.load()
                return np.ascontiguousarray(np.asarray(img))
    except (OSError, SyntaxError, ValueError) as exc:
        text = " ".join(str(exc).split())
        if "truncated" in text.lower():
            raise ImageIOError(
                f"{path}: truncated JPEG: the data ends before the image is complete"
            ) from None
        raise ImageIOError(f"{path}: corrupt JPEG data ({text})") from None


def _decode_with_pillow(path: Path) -> np.ndarray:
    """Formats OpenCV does not decode (GIF, palette oddities); 8-bit or 16-bit grey only."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode in ("I;16", "I;16B", "I;16L"):
                    return np.asarray(img, dtype=np.uint16)
                if mode not in ("L", "RGB", "RGBA"):
                    wanted = "RGBA" if "A" in mode or "transparency" in img.info else "RGB"
                    return np.asarray(img.convert(wanted)).copy()
                return np.asarray(img).copy()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageIOError(f"{path}: truncated or corrupt image ({exc})") from None


def _to_uint16(array: np.ndarray, path: Path) -> np.ndarray:
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(array, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    raise ImageIOError(f"{path}: unsupported sample type {array.dtype}; expected 8- or 16-bit")
