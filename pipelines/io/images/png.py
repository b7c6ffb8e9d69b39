"""PNG chunks: walking a file's chunks, checking its structure before decoding, adding chunks.

A PNG file is a signature and a list of chunks (length, type, data, CRC-32). Before the pixels
are handed to libpng (through OpenCV) the file is checked here, so that a damaged file gets a
precise one-line message (which chunk, which byte, how much is missing) instead of libpng's
messages printed on stderr; libpng is given only the chunks that decide the pixels, so no
ancillary chunk (a malformed colour profile, a text chunk) can make it print a warning.

Writing: OpenCV encodes the pixels (8 or 16 bits); :func:`add_chunks` then inserts metadata
chunks (iCCP, eXIf, iTXt) right after IHDR, where the PNG specification allows all of them.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"

_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
"""Allowed bit depths per colour type (grey, RGB, palette, grey+alpha, RGBA)."""

_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
"""Interlace passes: (x start, y start, x step, y step)."""

_INFLATE_STEP = 1 << 20

MAX_SIDE = 1_000_000
"""libpng's default limit on width and height, for reading and writing (OpenCV keeps it)."""


@dataclass(frozen=True)
class Chunk:
    """One chunk: its 4-letter type, the byte where it starts, its data, and whether its CRC matches."""

    kind: bytes
    offset: int
    data: bytes
    crc_ok: bool

    @property
    def name(self) -> str:
        """The type as text (``IDAT``), or its bytes when they are not letters."""
        return self.kind.decode("latin-1") if self.kind.isalpha() else repr(self.kind)

    @property
    def critical(self) -> bool:
        """Critical chunks (upper-case first letter) decide the pixels; the others are ancillary."""
        return not self.kind[0] & 0x20


@dataclass(frozen=True)
class Header:
    """The IHDR fields that decide how much image data there is."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool

    def raw_size(self) -> int:
        """Bytes of filtered image data: one filter byte per row, per interlace pass."""
        bits = self.bit_depth * _SAMPLES[self.colour_type]
        if not self.interlaced:
            return self.height * (1 + (self.width * bits + 7) // 8)
        total = 0
        for x0, y0, dx, dy in _ADAM7:
            w = (self.width - x0 + dx - 1) // dx if self.width > x0 else 0
            h = (self.height - y0 + dy - 1) // dy if self.height > y0 else 0
            if w and h:
                total += h * (1 + (w * bits + 7) // 8)
        return total


def iter_chunks(data: bytes) -> Iterator[Chunk]:
    """The chunks of a PNG file in order, up to IEND or the end of the data.

    Raises ValueError with a precise message when the signature is missing or a chunk is cut
    short by the end of the file.
    """
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file (no PNG signature)")
    pos = len(SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError(
                f"truncated PNG: the file ends at byte {len(data)}, inside the header of the chunk "
                f"that starts at byte {pos}"
            )
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFFFFFF:
            raise ValueError(f"corrupt PNG: the chunk at byte {pos} declares {length} bytes")
        end = pos + 12 + length
        chunk_name = Chunk(kind, pos, b"", True).name
        if end > len(data):
            raise ValueError(
                f"truncated PNG: the file ends at byte {len(data)}, inside the {chunk_name} chunk "
                f"that starts at byte {pos} ({end - len(data)} of its {length + 12} bytes are missing)"
            )
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        yield Chunk(kind, pos, body, zlib.crc32(kind + body) == crc)
        pos = end
        if kind == b"IEND":
            return


def find_chunk(data: bytes, kind: bytes) -> bytes | None:
    """The data of the first intact chunk of type ``kind``, or None (also for a damaged file)."""
    try:
        for chunk in iter_chunks(data):
            if chunk.kind == kind and chunk.crc_ok:
                return chunk.data
    except ValueError:
        return None
    return None


def decodable_stream(data: bytes) -> bytes:
    """The file reduced to the chunks that decide its pixels, after checking them.

    Returns signature, IHDR, PLTE, tRNS (when valid for the colour type, as libpng would keep
    it), the IDAT chunks and IEND. Raises ValueError naming what is wrong: a chunk cut short, a
    critical chunk whose CRC fails, an impossible header, image data that ends early or is not a
    valid zlib stream.
    """
    header: Header | None = None
    ihdr = palette = transparency = None
    idat: list[bytes] = []
    for chunk in iter_chunks(data):
        if chunk.kind == b"IEND":
            break
        if not chunk.critical and chunk.kind != b"tRNS":
            continue  # ancillary: read by Pillow for metadata, never needed by the decoder
        if not chunk.crc_ok:
            raise ValueError(
                f"corrupt PNG: the {chunk.name} chunk at byte {chunk.offset} fails its CRC check"
            )
        if chunk.kind == b"IHDR":
            if header is not None or chunk.offset != len(SIGNATURE):
                raise ValueError(f"corrupt PNG: IHDR chunk out of place at byte {chunk.offset}")
            header, ihdr = _header(chunk.data), chunk.data
        elif header is None:
            raise ValueError("corrupt PNG: the first chunk is not IHDR")
        elif chunk.kind == b"IDAT":
            idat.append(chunk.data)
        elif chunk.kind == b"PLTE" and palette is None and not idat:
            palette = chunk.data
        elif chunk.kind == b"tRNS" and transparency is None and not idat:
            transparency = chunk.data
        elif chunk.critical:
            raise ValueError(f"corrupt PNG: unexpected {chunk.name} chunk at byte {chunk.offset}")
    if header is None or ihdr is None:
        raise ValueError("corrupt PNG: no IHDR chunk")
    if not idat:
        raise ValueError(f"truncated PNG: the file ends at byte {len(data)} before any image data")
    if header.colour_type == 3:
        if palette is None or not palette or len(palette) % 3 or len(palette) > 768:
            raise ValueError("corrupt PNG: a palette image without a valid PLTE chunk")
    else:
        palette = None  # only a suggested palette for other colour types: no pixel depends on it
    if transparency is not None and not _valid_transparency(header, transparency, palette):
        transparency = None  # libpng ignores such a chunk too (after printing a warning)
    _check_image_data(header, idat)
    chunks = [(b"IHDR", ihdr)]
    chunks += [(b"PLTE", palette)] if palette is not None else []
    chunks += [(b"tRNS", transparency)] if transparency is not None else []
    chunks += [(b"IDAT", part) for part in idat]
    chunks.append((b"IEND", b""))
    return SIGNATURE + b"".join(encode_chunk(kind, body) for kind, body in chunks)


def _header(body: bytes) -> Header:
    if len(body) != 13:
        raise ValueError(f"corrupt PNG: IHDR holds {len(body)} bytes, expected 13")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", body
    )
    if colour not in _BIT_DEPTHS or depth not in _BIT_DEPTHS[colour]:
        raise ValueError(f"corrupt PNG: bit depth {depth} with colour type {colour} is not valid")
    if compression != 0 or filtering != 0 or interlace > 1:
        raise ValueError(
            f"corrupt PNG: unknown compression, filter or interlace method "
            f"({compression}, {filtering}, {interlace})"
        )
    if not 0 < width < 1 << 31 or not 0 < height < 1 << 31:
        raise ValueError(f"corrupt PNG: image size {width}x{height} is not valid")
    if max(width, height) > MAX_SIDE:
        raise ValueError(
            f"PNG image is {width}x{height}; the PNG decoder (libpng) reads at most {MAX_SIDE} "
            "pixels per side"
        )
    return Header(width, height, depth, colour, interlace == 1)


def _valid_transparency(header: Header, body: bytes, palette: bytes | None) -> bool:
    """tRNS as libpng keeps it: the right length for the colour type, samples within the depth."""
    if header.colour_type == 3:
        return palette is not None and 0 < len(body) <= len(palette) // 3
    samples = {0: 1, 2: 3}.get(header.colour_type)
    if samples is None or len(body) != 2 * samples:
        return False
    limit = (1 << header.bit_depth) - 1
    return all(value <= limit for value in struct.unpack(f">{samples}H", body))


def _check_image_data(header: Header, parts: list[bytes]) -> None:
    """The concatenated IDAT data must be one zlib stream of exactly the image's filtered size."""
    expected = header.raw_size()
    inflater = zlib.decompressobj()
    size = 0
    try:
        for part in parts:
            pending = part
            while pending:
                size += len(inflater.decompress(pending, _INFLATE_STEP))
                pending = inflater.unconsumed_tail
                if size > expected:
                    raise ValueError(
                        f"corrupt PNG: more image data than a {header.width}x{header.height} image holds"
                    )
    except zlib.error as exc:
        raise ValueError(
            f"corrupt PNG: the image data is not a valid zlib stream ({exc})"
        ) from None
    if size < expected or not inflater.eof:
        rows = header.height if header.interlaced else size * header.height // expected
        where = "" if header.interlaced else f" (rows {rows} to {header.height} are missing)"
        raise ValueError(
            f"truncated PNG: the image data ends after {size} of {expected} bytes{where}"
        )


def encode_chunk(kind: bytes, body: bytes) -> bytes:
    """One chunk: length, type, data and the CRC-32 of type and data."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def add_chunks(data: bytes, chunks: Iterable[tuple[bytes, bytes]]) -> bytes:
    """``data`` (a PNG file) with ``chunks`` (type, data) inserted right after its IHDR chunk."""
    if not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file that starts with IHDR")
    (length,) = struct.unpack_from(">I", data, 8)
    at = 8 + 12 + length
    return data[:at] + b"".join(encode_chunk(k, b) for k, b in chunks) + data[at:]


def iccp_chunk(profile: bytes, name: str = "ICC profile") -> tuple[bytes, bytes]:
    """An iCCP chunk: profile name (1-79 Latin-1 characters), compression method 0, zlib data."""
    return b"iCCP", name.encode("latin-1") + b"\0\0" + zlib.compress(profile, 9)


def itxt_chunk(keyword: str, text: str) -> tuple[bytes, bytes]:
    """An uncompressed iTXt chunk: keyword, no language tag, no translated keyword, UTF-8 text."""
    return b"iTXt", keyword.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")


def exif_chunk(exif: bytes) -> tuple[bytes, bytes]:
    """An eXIf chunk: the EXIF TIFF structure itself (no ``Exif\\0\\0`` prefix)."""
    return b"eXIf", exif


def find_chunk_in_file(path: str | os.PathLike[str], kind: bytes) -> bytes | None:
    """The data of the first intact ``kind`` chunk of a PNG file, seeking past the others.

    Reads only chunk headers and the chunk asked for, so finding an eXIf chunk stored after the
    image data costs no decoding. None when there is none or the file is damaged before it.
    """
    with open(path, "rb") as f:
        if f.read(len(SIGNATURE)) != SIGNATURE:
            return None
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            length, found = struct.unpack(">I4s", head)
            if found == kind:
                body, crc = f.read(length), f.read(4)
                intact = len(body) == length and crc == struct.pack(">I", zlib.crc32(kind + body))
                return body if intact else None
            if found == b"IEND":
                return None
            f.seek(length + 4, os.SEEK_CUR)
