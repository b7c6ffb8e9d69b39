"""Adding metadata (ICC profile, EXIF, XMP) to a TIFF file that OpenCV encoded.

OpenCV writes TIFF pixels at any depth (8/16 bits, grey/RGB/RGBA) but no metadata; Pillow
writes metadata but cannot hold 16-bit colour images. So the file OpenCV wrote is rebuilt
around its compressed strips, unchanged: a new first directory (IFD) made by Pillow's
``ImageFileDirectory_v2`` with OpenCV's tags plus ICCProfile (34675), XMP (700) and the EXIF
tags (descriptive IFD0 tags, then the Exif and GPS sub-directories), followed by the strips.
Pillow lays a directory out as TIFF writers do (directory, then its values, then the strips),
and moves the strip offsets past its own length, which is why the strips come last here.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from pipelines.io.images.metadata import EXIF_IFD, GPS_IFD, IMAGE_LENGTH, IMAGE_WIDTH

if TYPE_CHECKING:
    from PIL import Image

STRIP_OFFSETS, STRIP_BYTE_COUNTS = 273, 279
XMP_TAG, ICC_TAG = 700, 34675


def tiff_with_metadata(
    data: bytes, icc: bytes | None, exif: Image.Exif | None, xmp: bytes | None
) -> bytes:
    """``data`` (a single-image, strip-based TIFF file) with the ICC profile, EXIF and XMP added.

    The layout tags OpenCV wrote are kept as they are (including the lack of an ExtraSamples
    tag for alpha: adding one changes how OpenCV itself reads 8-bit RGBA back). Raises
    ValueError for a file that is not such a TIFF.
    """
    from PIL import Image, TiffImagePlugin, TiffTags

    with Image.open(io.BytesIO(data)) as img:
        if not isinstance(img, TiffImagePlugin.TiffImageFile):
            raise ValueError("not a TIFF file")
        source = img.tag_v2
        tags = {tag: source[tag] for tag in source}
        types = dict(source.tagtype)
    if STRIP_OFFSETS not in tags or STRIP_BYTE_COUNTS not in tags:
        raise ValueError("not a strip-based TIFF file")
    offsets, counts = _values(tags.pop(STRIP_OFFSETS)), _values(tags.pop(STRIP_BYTE_COUNTS))
    strips, starts, position = [], [], 0
    for offset, count in zip(offsets, counts, strict=True):
        strips.append(data[offset : offset + count])
        starts.append(position)
        position += count

    ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=data[:8])
    for tag, value in tags.items():
        ifd.tagtype[tag] = types[tag]
        ifd[tag] = value
    for tag, value in (exif or {}).items():
        if tag in tags or tag in (IMAGE_WIDTH, IMAGE_LENGTH):
            continue  # the file's own layout tags win
        if tag in (EXIF_IFD, GPS_IFD):
            assert exif is not None
            ifd.tagtype[tag] = TiffTags.LONG
            ifd[tag] = dict(exif.get_ifd(tag))
        else:
            ifd[tag] = value
    if icc:
        ifd.tagtype[ICC_TAG] = TiffTags.UNDEFINED
        ifd[ICC_TAG] = icc
    if xmp:
        ifd.tagtype[XMP_TAG] = TiffTags.BYTE
        ifd[XMP_TAG] = xmp
    ifd.tagtype[STRIP_OFFSETS] = ifd.tagtype[STRIP_BYTE_COUNTS] = TiffTags.LONG
    ifd[STRIP_OFFSETS] = tuple(starts)  # relative: Pillow adds where the strips begin
    ifd[STRIP_BYTE_COUNTS] = tuple(counts)
    header = data[:4] + (8).to_bytes(4, "little" if data[:2] == b"II" else "big")
    return header + ifd.tobytes(8) + b"".join(strips)


def _values(value: object) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (int(value),)  # type: ignore[call-overload]
