"""Provenance records inside image files: how an output was made, readable from the file alone.

A record is a JSON object (see :func:`make_provenance`) stored in a standard XMP packet, as
the ``pipelines:provenance`` property in the namespace :data:`NAMESPACE`, in every format that
holds XMP: PNG (an ``XML:com.adobe.xmp`` iTXt chunk, plus a plain ``provenance`` iTXt chunk
that any PNG tool lists), JPEG (APP1), WebP (the XMP chunk) and TIFF (tag 700). BMP holds none.
:func:`read_provenance` returns the record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from pipelines.errors import ImageIOError

NAMESPACE = "urn:esrgan-pipelines:provenance:1.0#"
"""XMP namespace of the ``provenance`` property (prefix ``pipelines``)."""

PNG_KEYWORD = "provenance"
"""Keyword of the PNG iTXt chunk holding the record's JSON."""

FORMAT = "esrgan-pipelines/provenance"
FORMAT_VERSION = 1

_XMP_NAMESPACE = "http://ns.adobe.com/xap/1.0/"
_PACKET_ID = "W5M0MpCehiHzreSzNTczkc9d"  # the fixed id the XMP specification gives every packet
_MAX_XMP = 16 << 20
"""Larger XMP packets are not parsed (a provenance record is a few kilobytes)."""


def project_version() -> str:
    """This project's installed version, or ``unknown``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("esrgan-pipelines")
    except PackageNotFoundError:
        return "unknown"


def make_provenance(
    *,
    source: str | None,
    steps: Sequence[Mapping[str, Any]],
    pipeline: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A provenance record: what made an output, from which input, with which software.

    ``steps`` holds one JSON-ready mapping per operation applied, in order (for a pipeline: the
    runner's step records, with ``step``, ``stage``, ``params`` and the stage's own
    ``provenance``); ``pipeline`` names the pipeline file and the writing step; ``command`` is
    a command line for outputs of a command. ``extra`` keys are added as they are.
    """
    record: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "software": "esrgan-pipelines",
        "version": project_version(),
        "source": source,
        "steps": [dict(step) for step in steps],
    }
    if pipeline is not None:
        record["pipeline"] = dict(pipeline)
    if command is not None:
        record["command"] = list(command)
    record.update(extra)
    return record


def provenance_json(record: Mapping[str, Any], target: str) -> str:
    """``record`` as compact JSON; ImageIOError naming ``target`` if it is not JSON-ready."""
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ImageIOError(f"{target}: the provenance record is not JSON-ready ({exc})") from None


def provenance_xmp(text: str, software: str = "esrgan-pipelines") -> bytes:
    """An XMP packet (UTF-8) holding the record's JSON ``text`` and ``xmp:CreatorTool``."""
    packet = (
        f'<?xpacket begin="\ufeff" id="{_PACKET_ID}"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:xmp="{_XMP_NAMESPACE}" xmlns:pipelines="{NAMESPACE}">\n'
        f"   <xmp:CreatorTool>{escape(software)}</xmp:CreatorTool>\n"
        f"   <pipelines:provenance>{escape(text)}</pipelines:provenance>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


def provenance_from_xmp(packet: bytes | str) -> str | None:
    """The ``pipelines:provenance`` text of an XMP packet (element or attribute form), or None."""
    import xml.etree.ElementTree as ET

    data = packet.encode("utf-8") if isinstance(packet, str) else bytes(packet)
    if len(data) > _MAX_XMP or NAMESPACE.encode() not in data:
        return None
    start = data.find(b"<x:xmpmeta")
    end = data.rfind(b"</x:xmpmeta>")
    if start >= 0 and end > start:
        data = data[start : end + len(b"</x:xmpmeta>")]
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    name = f"{{{NAMESPACE}}}provenance"
    for element in root.iter():
        if element.tag == name and element.text:
            return element.text
        if name in element.attrib:
            return element.attrib[name]
    return None


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The provenance record stored in an image file, or None when it has none.

    Raises ImageIOError when the file cannot be read as an image, or when its record is not a
    JSON object.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageIOError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            info = dict(img.info)
            tags = getattr(img, "tag_v2", None)
            xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
            if not xmp and tags is not None:
                xmp = tags.get(700)
    except UnidentifiedImageError:
        raise ImageIOError(
            f"{path}: not a supported image format (or the file is corrupt)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageIOError(f"{path}: cannot read the file's metadata ({exc})") from None
    text = info.get(PNG_KEYWORD)
    if not isinstance(text, str):
        text = provenance_from_xmp(xmp) if isinstance(xmp, (bytes, str)) else None
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise ImageIOError(f"{path}: the provenance record is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ImageIOError(f"{path}: the provenance record is not a JSON object")
    return record
