"""Writing image files: OpenCV encodes the pixels, then the metadata goes into the container.

16-bit data is kept for PNG and TIFF; JPEG, WebP and BMP hold 8 bits. JPEG and WebP take an
encoder ``quality`` (1-100; by default JPEG 95 and WebP lossless, OpenCV's defaults); the other
formats are lossless and have none. With ``metadata`` the
input's ICC profile goes into every format that holds one (PNG iCCP, JPEG APP2, WebP ICCP,
TIFF tag 34675) and its EXIF is carried over (orientation 1, no thumbnail, the output's pixel
dimensions); with ``provenance`` a JSON record of how the output was made is stored as XMP
(and a PNG ``provenance`` text chunk). BMP holds neither. Every file is written to a temporary
name and renamed into place.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import ImageIOError
from pipelines.io.atomic import atomic_target
from pipelines.io.images import png
from pipelines.io.images.containers import jpeg_with_metadata, webp_with_metadata
from pipelines.io.images.metadata import (
    JPEG_EXIF_LIMIT,
    ImageMetadata,
    exif_bytes,
    exif_for_output,
    icc_for_output,
)
from pipelines.io.images.provenance import (
    PNG_KEYWORD,
    project_version,
    provenance_json,
    provenance_xmp,
)
from pipelines.io.images.read import IMAGE_SUFFIXES
from pipelines.io.images.tiff import tiff_with_metadata

log = logging.getLogger(__name__)

_WRITE_8BIT_ONLY = (".jpg", ".jpeg", ".webp", ".bmp")
QUALITY_RANGE = (1, 100)
"""Encoder quality of the lossy formats, lowest and highest (the same scale for JPEG and WebP)."""
_JPEG_XMP_LIMIT = 65533 - 29  # one APP1 segment less its XMP namespace header


def write_image(
    path: str | os.PathLike[str],
    array: np.ndarray,
    overwrite: bool = False,
    *,
    metadata: ImageMetadata | None = None,
    provenance: Mapping[str, Any] | None = None,
    quality: int | None = None,
) -> Path:
    """Encode ``array`` by ``path``'s extension and rename it into place atomically.

    16-bit data is kept for PNG and TIFF; formats that hold only 8 bits (JPEG, WebP, BMP)
    get the 16-bit values rounded to 8 bits. ``metadata`` (usually the input's, from
    :func:`read_image_with_meta`) adds its ICC profile and EXIF; ``provenance`` (a JSON-ready
    mapping, see :func:`make_provenance`) is stored as XMP. Leave both None to write neither
    (a ``--no-metadata`` switch). ``quality`` (1-100) sets the JPEG or WebP encoder's quality
    (default: JPEG 95, WebP lossless); PNG, TIFF and BMP are lossless and ignore it.
    """
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
    encoded = encode_image(array, suffix, str(path), quality)
    if (metadata is not None and not metadata.empty) or provenance is not None:
        encoded = add_metadata(encoded, suffix, array.shape, metadata, provenance, str(path))
    write_bytes_atomic(path, encoded)
    return path


def encode_image(array: np.ndarray, suffix: str, target: str, quality: int | None = None) -> bytes:
    """``array`` (RGB(A)/grey, uint8/uint16) encoded by OpenCV in the format ``suffix`` names,
    at ``quality`` where the format is lossy (JPEG, WebP)."""
    import cv2

    low, high = QUALITY_RANGE
    if quality is not None and not (isinstance(quality, int) and low <= quality <= high):
        raise ImageIOError(
            f"{target}: quality {quality!r} is out of range; expected {low} to {high}"
        )
    if array.dtype == np.uint16 and suffix in _WRITE_8BIT_ONLY:
        array = ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageIOError(
            f"{target}: cannot write samples of type {array.dtype}; expected uint8 or uint16"
        )
    if array.ndim == 3 and array.shape[2] == 4 and suffix in (".jpg", ".jpeg", ".bmp"):
        raise ImageIOError(
            f"{target}: {suffix} cannot store an alpha channel; write .png, .tif or .webp"
        )
    if suffix == ".png" and array.ndim >= 2 and max(array.shape[:2]) > png.MAX_SIDE:
        raise ImageIOError(
            f"{target}: a PNG holds at most {png.MAX_SIDE} pixels per side (libpng's limit); "
            f"this image is {array.shape[1]}x{array.shape[0]}"
        )
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = cv2.cvtColor(
            array, cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
        )
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        ok, encoded = cv2.imencode(suffix, array, _quality_flags(suffix, quality))
    except cv2.error:
        ok = False
    if not ok:
        raise ImageIOError(f"{target}: the encoder refused an array of shape {array.shape}")
    return bytes(encoded.tobytes())


def _quality_flags(suffix: str, quality: int | None) -> list[int]:
    """OpenCV's encoder parameters for ``quality`` in this format (none: its defaults)."""
    import cv2

    if quality is None:
        return []
    if suffix in (".jpg", ".jpeg"):
        return [cv2.IMWRITE_JPEG_QUALITY, quality]
    if suffix == ".webp":
        return [cv2.IMWRITE_WEBP_QUALITY, quality]
    return []  # lossless formats


def add_metadata(
    data: bytes,
    suffix: str,
    shape: tuple[int, ...],
    metadata: ImageMetadata | None,
    provenance: Mapping[str, Any] | None,
    target: str,
) -> bytes:
    """``data`` (an encoded file) with the ICC profile, EXIF and provenance its format can hold."""
    height, width = int(shape[0]), int(shape[1])
    channels = 1 if len(shape) == 2 else int(shape[2])
    icc = exif = None
    if metadata is not None:
        icc = icc_for_output(metadata.icc_profile, channels, target)
        exif = exif_for_output(metadata.exif, width, height)
    text = None if provenance is None else provenance_json(provenance, target)
    xmp = None if text is None else provenance_xmp(text, f"esrgan-pipelines {project_version()}")
    if suffix == ".bmp":
        if icc or exif or xmp:
            log.debug("%s: BMP files hold no ICC profile, EXIF or XMP; written without", target)
        return data
    if suffix == ".tif" or suffix == ".tiff":
        return _contained(tiff_with_metadata, target, data, icc, exif, xmp)
    block = exif_bytes(exif) if exif is not None else None
    if suffix == ".png":
        chunks = [png.iccp_chunk(icc)] if icc else []
        chunks += [png.exif_chunk(block)] if block else []
        if text is not None and xmp is not None:
            chunks += [
                png.itxt_chunk(PNG_KEYWORD, text),
                png.itxt_chunk("XML:com.adobe.xmp", xmp.decode()),
            ]
        return _contained(png.add_chunks, target, data, chunks)
    if suffix == ".webp":
        alpha = channels == 4
        return _contained(webp_with_metadata, target, data, width, height, alpha, icc, block, xmp)
    if block is not None and len(block) > JPEG_EXIF_LIMIT:
        log.warning(
            "%s: the EXIF block (%d bytes) does not fit a JPEG segment; written without it",
            target,
            len(block),
        )
        block = None
    if xmp is not None and len(xmp) > _JPEG_XMP_LIMIT:
        log.warning(
            "%s: the provenance record (%d bytes) does not fit a JPEG segment; written without it",
            target,
            len(xmp),
        )
        xmp = None
    return _contained(jpeg_with_metadata, target, data, icc, block, xmp)


def _contained(add: Any, target: str, data: bytes, *args: Any) -> bytes:
    try:
        return bytes(add(data, *args))
    except ValueError as exc:
        raise ImageIOError(f"{target}: cannot add the metadata ({exc})") from None


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    try:
        with atomic_target(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ImageIOError(f"{path}: cannot write output ({exc.strerror or exc})") from None
