"""``esrgan info IMAGE``: how an image file was made (its provenance record) and what it carries.

An argument whose suffix is an image format's (``pipelines.api.IMAGE_SUFFIXES``) is an image:
its provenance record (``pipelines.api.read_provenance``: the model's name and SHA-256,
architecture, engine, precision, tile, halo, self-ensemble, version, command or pipeline step)
and whether it carries an ICC profile and EXIF (``pipelines.api.read_metadata``). Anything else
is a model, described by ``esrgan info`` as before. Reads headers only; imports no torch.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NO_RECORD = "none (written without one, with --no-metadata, or by another program)"


def is_image_path(argument: str) -> bool:
    """True when ``argument`` names an image file by its suffix (model files have others)."""
    from pipelines.api import IMAGE_SUFFIXES

    return Path(argument).suffix.lower() in IMAGE_SUFFIXES


def describe_image(path: str | Path) -> dict[str, Any]:
    """The file's provenance record (None without one) and its ICC profile and EXIF facts.
    An unreadable or damaged file is a one-line ``ImageIOError`` naming it."""
    from pipelines.api import read_metadata, read_provenance

    provenance = read_provenance(path)  # checks the file exists and is an image
    metadata = read_metadata(path)
    icc = metadata.icc_profile
    return {
        "file": str(path),
        "icc_profile": {"bytes": len(icc), "colour_space": _colour_space(icc)} if icc else None,
        "exif": {"bytes": len(metadata.exif)} if metadata.exif else None,
        "provenance": provenance,
    }


def _colour_space(profile: bytes) -> str | None:
    """The data colour space in an ICC profile's header (bytes 16-19: 'RGB ', 'GRAY' ...)."""
    if len(profile) < 128 or profile[36:40] != b"acsp":
        return None
    return profile[16:20].decode("latin-1").strip() or None


def image_lines(info: dict[str, Any]) -> Iterator[str]:
    """The description as ``esrgan info IMAGE`` prints it: one ``key: value`` per line, nested
    keys indented under their parent, list items numbered, a list of words (a command) as one
    shell-quoted line."""
    yield f"file: {info['file']}"
    icc, exif = info["icc_profile"], info["exif"]
    if icc:
        space = icc["colour_space"] or "unknown colour space"
        yield f"ICC profile: yes ({space}, {icc['bytes']} bytes)"
    else:
        yield "ICC profile: no"
    yield f"EXIF: yes ({exif['bytes']} bytes)" if exif else "EXIF: no"
    if info["provenance"] is None:
        yield f"provenance: {NO_RECORD}"
        return
    yield "provenance:"
    yield from _nested(info["provenance"], "  ")


def _nested(value: Any, indent: str) -> Iterator[str]:
    items = value.items() if isinstance(value, dict) else enumerate(value, start=1)
    for key, item in items:
        if isinstance(item, list) and item and all(isinstance(i, str) for i in item):
            yield f"{indent}{key}: {shlex.join(item)}"  # a command line
        elif isinstance(item, (dict, list)) and item:
            yield f"{indent}{key}:"
            yield from _nested(item, indent + "  ")
        else:
            yield f"{indent}{key}: {json.dumps(item) if isinstance(item, (dict, list)) else item}"


def cmd_image_info(path: str, as_json: bool) -> int:
    """Print an image file's description (``--json``: one JSON object)."""
    info = describe_image(path)
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        for line in image_lines(info):
            print(line)
    return 0
