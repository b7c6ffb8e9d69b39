"""Reading image files: header checks before any decoding, upright arrays, and their metadata.

Pillow reads the header (size, format, EXIF orientation, ICC profile, EXIF) so that oversized
images are refused before any pixel is decoded; :mod:`pipelines.io.images.decode` decodes the
pixels. Arrays are (H, W) for grey or (H, W, C) with C = 3 (RGB) or 4 (RGBA), dtype uint8 or
uint16, turned upright per the EXIF orientation.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import ImageIOError
from pipelines.io.images import png
from pipelines.io.images.decode import decode_pixels
from pipelines.io.images.metadata import ORIENTATION, ImageMetadata, exif_as_read

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_MAX_PIXELS = 1 << 28
"""Largest image (in pixels, about 268 MP) read by default; a guard against decompression bombs."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
"""File extensions treated as images when a folder or glob is expanded."""

STILL_OR_ANIMATED_SUFFIXES = (".gif",)
"""Read-only formats whose files hold one frame (an image) or several (an animation, a video)."""


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    orientation: int
    metadata: ImageMetadata | None


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to an RGB(A)/grey array of its own bit depth, upright per EXIF."""
    path = Path(path)
    _, _, orientation = read_checked_header(path, max_pixels)
    return apply_exif_orientation(decode_pixels(path), orientation)


def read_image_with_meta(
    path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, ImageMetadata]:
    """:func:`read_image` and the file's ICC profile and EXIF (:class:`ImageMetadata`)."""
    path = Path(path)
    header = _checked(_inspect(path, with_metadata=True), path, max_pixels)
    assert header.metadata is not None
    array = apply_exif_orientation(decode_pixels(path), header.orientation)
    return array, header.metadata


def read_metadata(path: str | os.PathLike[str]) -> ImageMetadata:
    """The ICC profile and EXIF of an image file, read from its header (no pixel is decoded)."""
    metadata = _inspect(Path(path), with_metadata=True).metadata
    assert metadata is not None
    return metadata


def read_checked_header(path: Path, max_pixels: int) -> tuple[int, int, int]:
    """Width, height and EXIF orientation, refusing empty images and images over ``max_pixels``."""
    header = _checked(_inspect(Path(path), with_metadata=False), Path(path), max_pixels)
    return header.width, header.height, header.orientation


def read_header(path: Path) -> tuple[int, int, int]:
    """Width, height and EXIF orientation of an image file, without decoding its pixels."""
    header = _inspect(Path(path), with_metadata=False)
    return header.width, header.height, header.orientation


def _checked(header: _Header, path: Path, max_pixels: int) -> _Header:
    width, height = header.width, header.height
    if width < 1 or height < 1:
        raise ImageIOError(f"{path}: empty image ({width}x{height})")
    if width * height > max_pixels:
        raise ImageIOError(
            f"{path}: image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} (raise it with max_pixels / --max-pixels if the file is trusted)"
        )
    return header


def _inspect(path: Path, with_metadata: bool) -> _Header:
    """One look at the file's header: size, orientation and (if asked) ICC profile and EXIF."""
    with _opened(path) as img:
        exif = _exif_of(img, path)
        orientation = int(exif.get(ORIENTATION, 1) or 1)
        metadata = None
        if with_metadata:
            icc = img.info.get("icc_profile") or None
            metadata = ImageMetadata(icc_profile=icc, exif=exif_as_read(_exif_raw(exif)))
        return _Header(img.width, img.height, orientation, metadata)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """The file opened by Pillow (header only), its failures as one-line ImageIOErrors."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ImageIOError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb and truncation warnings: refused below instead
            with Image.open(path) as img:
                yield img
    except Image.DecompressionBombError as exc:
        raise ImageIOError(f"{path}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        problem = _header_problem(path, None)
        raise ImageIOError(
            f"{path}: {problem or 'not a supported image format (or the file is corrupt)'}"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        problem = _header_problem(path, exc)
        raise ImageIOError(f"{path}: {problem or f'cannot read image header ({exc})'}") from None


def _header_problem(path: Path, exc: BaseException | None) -> str | None:
    """What is wrong with a file whose header Pillow refused, precisely where known, or None.

    PNG: which chunk at which byte (:func:`png.decodable_stream`); JPEG: whether it is cut
    short. None for other formats (the caller says what Pillow said).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if data.startswith(png.SIGNATURE):
        try:
            png.decodable_stream(data)
        except ValueError as problem:
            return str(problem)
    elif data[:3] == b"\xff\xd8\xff" and exc is not None and "truncated" in str(exc).lower():
        return f"truncated JPEG: the file ends at byte {len(data)}, inside its header segments"
    return None


def _exif_of(img: Image.Image, path: Path) -> Image.Exif:
    """The file's EXIF as Pillow reads it, without decoding pixels (Pillow would, for a PNG)."""
    from PIL import Image

    if img.format != "PNG":
        return img.getexif()
    if "exif" not in img.info:
        found = png.find_chunk_in_file(path, b"eXIf")  # stored after the image data
        if found is not None:
            img.info["exif"] = b"Exif\0\0" + found
    return Image.Image.getexif(img)  # the base method reads img.info only


def _exif_raw(exif: Image.Exif) -> bytes | None:
    """The EXIF block, None when it holds no more than an orientation (Pillow may take that from
    XMP) or cannot be written back (a damaged block is dropped, not an error)."""
    if not any(tag != ORIENTATION for tag in exif):
        return None
    try:
        return exif.tobytes()
    except Exception:  # Pillow raises many types on damaged EXIF
        return None


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


def is_still_image(path: str | os.PathLike[str]) -> bool:
    """True for a GIF that holds one frame, which is read as an image (an animated one is a
    video); False for any other file, or one Pillow cannot open."""
    from PIL import Image

    if Path(path).suffix.lower() not in STILL_OR_ANIMATED_SUFFIXES:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                return int(getattr(img, "n_frames", 1)) == 1
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return False


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
