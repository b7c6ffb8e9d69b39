"""Reading and writing image files without losing bit depth, alpha or orientation.

Pillow reads the header (size, format, EXIF orientation) so that oversized images are refused
before any pixel is decoded; OpenCV decodes the pixels because Pillow silently reduces 16-bit
colour PNGs to 8 bits. Arrays are (H, W) for grey or (H, W, C) with C = 3 (RGB) or 4 (RGBA),
dtype uint8 or uint16. Writes go to a temporary file that is renamed into place.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from pipelines.errors import ImageIOError
from pipelines.io.atomic import atomic_target

DEFAULT_MAX_PIXELS = 1 << 28
"""Largest image (in pixels, about 268 MP) read by default; a guard against decompression bombs."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
"""File extensions treated as images when a folder or glob is expanded."""

_EXIF_ORIENTATION = 0x0112
_WRITE_8BIT_ONLY = (".jpg", ".jpeg", ".webp", ".bmp")


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to an RGB(A)/grey array of its own bit depth, upright per EXIF."""
    path = Path(path)
    _, _, orientation = read_checked_header(path, max_pixels)
    array = _decode_pixels(path)
    return apply_exif_orientation(array, orientation)


def read_checked_header(path: Path, max_pixels: int) -> tuple[int, int, int]:
    """Width, height and EXIF orientation, refusing empty images and images over ``max_pixels``."""
    width, height, orientation = read_header(path)
    if width < 1 or height < 1:
        raise ImageIOError(f"{path}: empty image ({width}x{height})")
    if width * height > max_pixels:
        raise ImageIOError(
            f"{path}: image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} (raise it with max_pixels / --max-pixels if the file is trusted)"
        )
    return width, height, orientation


def read_header(path: Path) -> tuple[int, int, int]:
    """Width, height and EXIF orientation of an image file, without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ImageIOError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
                return img.width, img.height, orientation
    except Image.DecompressionBombError as exc:
        raise ImageIOError(f"{path}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageIOError(
            f"{path}: not a supported image format (or the file is corrupt)"
        ) from None
    except OSError as exc:
        raise ImageIOError(f"{path}: cannot read image header ({exc})") from None


def _decode_pixels(path: Path) -> np.ndarray:
    import cv2

    cv2.utils.logging.setLogLevel(
        cv2.utils.logging.LOG_LEVEL_ERROR
    )  # we raise on corrupt files instead
    data = np.fromfile(path, dtype=np.uint8)
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    array = cv2.imdecode(data, flags) if data.size else None
    if array is None:
        return _decode_with_pillow(path)
    if array.dtype not in (np.uint8, np.uint16):
        array = _to_uint16(array, path)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB
        array = cv2.cvtColor(array, code)
    return np.ascontiguousarray(array)


def _decode_with_pillow(path: Path) -> np.ndarray:
    """Formats OpenCV does not decode (GIF, palette oddities); 8-bit or 16-bit grey only."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(img, dtype=np.uint16)
            if mode not in ("L", "RGB", "RGBA"):
                wanted = "RGBA" if "A" in mode or "transparency" in img.info else "RGB"
                return np.asarray(img.convert(wanted)).copy()
            return np.asarray(img).copy()
    except OSError as exc:
        raise ImageIOError(f"{path}: truncated or corrupt image ({exc})") from None


def _to_uint16(array: np.ndarray, path: Path) -> np.ndarray:
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(array, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    raise ImageIOError(f"{path}: unsupported sample type {array.dtype}; expected 8- or 16-bit")


def apply_exif_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip ``array`` so that an EXIF-oriented photo is upright (tags 1-8)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(array))


def write_image(path: str | os.PathLike[str], array: np.ndarray, overwrite: bool = False) -> Path:
    """Encode ``array`` by ``path``'s extension and rename it into place atomically.

    16-bit data is kept for PNG and TIFF; formats that hold only 8 bits (JPEG, WebP, BMP)
    get the 16-bit values rounded to 8 bits.
    """
    import cv2

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageIOError(
            f"{path}: cannot write {suffix or 'extension-less'} files; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    if path.exists() and not overwrite:
        raise ImageIOError(
            f"{path}: output exists (pass --overwrite / overwrite: true to replace it)"
        )
    array = np.asarray(array)
    if array.dtype == np.uint16 and suffix in _WRITE_8BIT_ONLY:
        array = ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageIOError(
            f"{path}: cannot write samples of type {array.dtype}; expected uint8 or uint16"
        )
    if array.ndim == 3 and array.shape[2] == 4 and suffix in (".jpg", ".jpeg", ".bmp"):
        raise ImageIOError(
            f"{path}: {suffix} cannot store an alpha channel; write .png, .tif or .webp"
        )
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = cv2.cvtColor(
            array, cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
        )
    ok, encoded = cv2.imencode(suffix, array)
    if not ok:
        raise ImageIOError(f"{path}: the encoder refused an array of shape {array.shape}")
    write_bytes_atomic(path, encoded.tobytes())
    return path


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    try:
        with atomic_target(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ImageIOError(f"{path}: cannot write output ({exc.strerror or exc})") from None


def expand_inputs(patterns: Iterable[str]) -> Iterator[Path]:
    """Files named by paths, globs or folders (folders searched recursively for images)."""
    import glob

    seen: set[Path] = set()
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not found:
                raise ImageIOError(f"{pattern}: no such file, folder or matching glob")
        for p in found:
            if p not in seen:
                seen.add(p)
                yield p
