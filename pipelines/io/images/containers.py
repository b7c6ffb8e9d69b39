"""Adding metadata (ICC profile, EXIF, XMP) to JPEG and WebP files that OpenCV encoded.

The pixels stay exactly as OpenCV encoded them; only the containers change:

* JPEG: APPn segments after SOI (and the JFIF APP0 segment when there is one): APP1 ``Exif``,
  APP1 XMP, and the ICC profile as APP2 ``ICC_PROFILE`` segments (split into numbered pieces of
  at most 65,519 bytes, as the ICC specification's annex B says).
* WebP: the file is turned into the extended format (a VP8X chunk with the ICC, EXIF, XMP and
  alpha flags and the canvas size), with ICCP before the image chunks and EXIF and XMP after
  them, the order the WebP container specification requires.
"""

from __future__ import annotations

import struct

_JPEG_SEGMENT_MAX = 65533
"""Largest payload of one JPEG marker segment (its 2-byte length counts itself)."""

_ICC_PIECE = _JPEG_SEGMENT_MAX - 14
_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\0"


def jpeg_with_metadata(
    data: bytes, icc: bytes | None, exif: bytes | None, xmp: bytes | None
) -> bytes:
    """``data`` (a JPEG file) with EXIF, XMP and ICC segments inserted after SOI (and APP0).

    ``exif`` is a TIFF structure without prefix. Raises ValueError when a block does not fit:
    EXIF or XMP over one segment (64 KB), an ICC profile over 255 segments.
    """
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file (no SOI marker)")
    at = 2
    if data[2:4] == b"\xff\xe0":
        at = 4 + int.from_bytes(data[4:6], "big")
    segments = []
    if exif:
        segments.append(_segment(0xE1, b"Exif\0\0" + exif, "EXIF"))
    if xmp:
        segments.append(_segment(0xE1, _XMP_JPEG_HEADER + xmp, "XMP"))
    if icc:
        pieces = [icc[i : i + _ICC_PIECE] for i in range(0, len(icc), _ICC_PIECE)]
        if len(pieces) > 255:
            raise ValueError(f"the ICC profile ({len(icc)} bytes) is too large for JPEG")
        for number, piece in enumerate(pieces, 1):
            header = b"ICC_PROFILE\0" + bytes([number, len(pieces)])
            segments.append(_segment(0xE2, header + piece, "ICC"))
    return data[:at] + b"".join(segments) + data[at:]


def _segment(marker: int, payload: bytes, what: str) -> bytes:
    if len(payload) > _JPEG_SEGMENT_MAX:
        raise ValueError(
            f"the {what} block ({len(payload)} bytes) is over the {_JPEG_SEGMENT_MAX} bytes one "
            "JPEG segment holds"
        )
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


_VP8X_ICC, _VP8X_ALPHA, _VP8X_EXIF, _VP8X_XMP = 0x20, 0x10, 0x08, 0x04


def webp_with_metadata(
    data: bytes,
    width: int,
    height: int,
    alpha: bool,
    icc: bytes | None,
    exif: bytes | None,
    xmp: bytes | None,
) -> bytes:
    """``data`` (a still WebP file) in the extended format with ICCP, EXIF and XMP chunks.

    ``width`` and ``height`` are the canvas size and ``alpha`` says whether the image has an
    alpha channel (both known to the writer). Raises ValueError for a file that is not WebP.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file (no RIFF/WEBP header)")
    chunks = _riff_chunks(data[12:])
    flags = 0
    if chunks and chunks[0][0] == b"VP8X":
        flags = chunks[0][1][0]
        chunks = chunks[1:]
    chunks = [c for c in chunks if c[0] not in (b"ICCP", b"EXIF", b"XMP ")]
    flags |= (_VP8X_ICC if icc else 0) | (_VP8X_EXIF if exif else 0) | (_VP8X_XMP if xmp else 0)
    flags |= _VP8X_ALPHA if alpha else 0
    vp8x = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    ordered = [(b"VP8X", vp8x)]
    ordered += [(b"ICCP", icc)] if icc else []
    ordered += chunks
    ordered += [(b"EXIF", exif)] if exif else []
    ordered += [(b"XMP ", xmp)] if xmp else []
    body = b"WEBP" + b"".join(_riff_chunk(kind, payload) for kind, payload in ordered)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks = []
    pos = 0
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if pos + 8 + size > len(data):
            raise ValueError(
                f"WebP chunk {kind!r} at byte {pos + 12} runs past the end of the file"
            )
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) & 1 else b""
    return kind + struct.pack("<I", len(payload)) + payload + pad
