"""Colour and camera data of an image file (ICC profile, EXIF), kept from an input to its outputs.

:class:`ImageMetadata` is what :func:`~pipelines.io.images.read.read_metadata` finds in a file
and what :func:`~pipelines.io.images.write.write_image` writes into one. The EXIF block is kept
as bytes (a TIFF structure) and edited with Pillow when an output is written: the orientation
becomes 1 (the pixels were turned upright on reading), the thumbnail is dropped (it shows the
input), pixel dimensions are set to the output's size, and tags that describe a TIFF file's own
layout (strips, bit depth, compression, an embedded ICC profile or XMP) are removed, since they
would describe the wrong file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

ORIENTATION = 0x0112
IMAGE_WIDTH, IMAGE_LENGTH = 0x0100, 0x0101
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
PIXEL_X, PIXEL_Y = 0xA002, 0xA003

LAYOUT_TAGS = frozenset(
    {
        0x00FE, 0x00FF, 0x0102, 0x0103, 0x0106, 0x0107, 0x010A, 0x0111, 0x0115, 0x0116,
        0x0117, 0x0118, 0x0119, 0x011C, 0x0124, 0x0125, 0x013D, 0x0140, 0x0142, 0x0143,
        0x0144, 0x0145, 0x0152, 0x0153, 0x0154, 0x0155, 0x0201, 0x0202, 0x0211, 0x0212,
        0x0213, 0x02BC, 0x83BB, 0x8649, 0x8773, 0x935C,
    }
)  # fmt: skip
"""IFD0 tags about a file's own layout and containers (bit depth, compression, strips, tiles,
thumbnail, XMP, IPTC, Photoshop data, ICC profile), never carried into another file."""

JPEG_EXIF_LIMIT = 65533 - 6
"""Largest EXIF block one JPEG APP1 segment holds (after its ``Exif\\0\\0`` prefix)."""


@dataclass(frozen=True)
class ImageMetadata:
    """The ICC profile and EXIF block of an image file; None for what the file does not have.

    ``exif`` is a TIFF structure (starting ``II*\\0`` or ``MM\\0*``, no ``Exif\\0\\0`` prefix)
    with the layout tags removed and the orientation set to 1: it describes the upright array
    that :func:`read_image` returns, not the stored pixels. Its pixel dimensions still say the
    input's size; writing updates them.
    """

    icc_profile: bytes | None = None
    exif: bytes | None = None

    @property
    def empty(self) -> bool:
        """True when there is nothing to write."""
        return not self.icc_profile and not self.exif


def icc_colour_space(profile: bytes) -> str | None:
    """The data colour space of an ICC profile (``RGB``, ``GRAY``, ``CMYK`` ...), None if invalid.

    Checks what a reader checks first: at least a 128-byte header, the size field equal to the
    length, and the ``acsp`` signature.
    """
    if len(profile) < 128 or profile[36:40] != b"acsp":
        return None
    if int.from_bytes(profile[0:4], "big") != len(profile):
        return None
    return profile[16:20].decode("latin-1").strip() or None


def icc_for_output(profile: bytes | None, channels: int, target: str) -> bytes | None:
    """``profile`` when it is valid and fits the output's channels (GRAY for grey, RGB otherwise).

    A profile that does not fit (a CMYK profile of a JPEG decoded to RGB, a grey profile on an
    image made colour by a stage) would make viewers show wrong colours; it is dropped with a
    warning naming ``target``.
    """
    if not profile:
        return None
    space = icc_colour_space(profile)
    wanted = "GRAY" if channels == 1 else "RGB"
    if space != wanted:
        reason = "is not a valid ICC profile" if space is None else f"is for {space} data"
        log.warning(
            "%s: the input's colour profile %s, not %s; written without it", target, reason, wanted
        )
        return None
    return profile


def parse_exif(data: bytes) -> Image.Exif | None:
    """A Pillow Exif object of ``data`` (with or without the ``Exif\\0\\0`` prefix), None if unreadable."""
    from PIL import Image

    exif = Image.Exif()
    try:
        exif.load(data)
        for ifd in (EXIF_IFD, GPS_IFD):
            if ifd in exif:
                exif.get_ifd(ifd)  # read the sub-directories now: errors surface here
    except Exception as exc:  # Pillow raises many types on damaged EXIF
        log.debug("unreadable EXIF block dropped: %s", exc)
        return None
    return exif


def clean_exif(exif: Image.Exif) -> Image.Exif:
    """``exif`` without layout tags and thumbnail, oriented upright (orientation 1)."""
    for tag in LAYOUT_TAGS & set(exif):
        del exif[tag]
    exif[ORIENTATION] = 1
    return exif


def exif_bytes(exif: Image.Exif) -> bytes | None:
    """The TIFF structure of ``exif`` (no prefix, no thumbnail), None when Pillow cannot write it."""
    try:
        data = exif.tobytes()
    except Exception as exc:  # a tag value Pillow cannot encode
        log.debug("EXIF block could not be rewritten: %s", exc)
        return None
    return data[6:] if data.startswith(b"Exif\0\0") else data


def exif_as_read(data: bytes | None) -> bytes | None:
    """An input file's EXIF block as :class:`ImageMetadata` keeps it (cleaned, upright), or None."""
    if not data:
        return None
    exif = parse_exif(data)
    if exif is None:
        return None
    exif = clean_exif(exif)
    if set(exif) <= {ORIENTATION, IMAGE_WIDTH, IMAGE_LENGTH}:
        return None  # only what a plain TIFF's own layout says: no camera data to keep
    return exif_bytes(exif)


def exif_for_output(data: bytes | None, width: int, height: int) -> Image.Exif | None:
    """The EXIF to write with a ``width`` x ``height`` output: cleaned, upright, sizes updated."""
    if not data:
        return None
    exif = parse_exif(data)
    if exif is None:
        return None
    exif = clean_exif(exif)
    if IMAGE_WIDTH in exif or IMAGE_LENGTH in exif:
        exif[IMAGE_WIDTH], exif[IMAGE_LENGTH] = width, height
    sub = exif.get_ifd(EXIF_IFD) if EXIF_IFD in exif else None
    if sub is not None and (PIXEL_X in sub or PIXEL_Y in sub):
        sub[PIXEL_X], sub[PIXEL_Y] = width, height
    return exif
