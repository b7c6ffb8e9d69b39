"""Model cards: an OpenModelDB-style ``NAME.json`` beside a model file adds what the file cannot say.

The fields are OpenModelDB's model JSON ones: ``name``, ``author`` (a name or a list of
names), ``license`` (an SPDX expression, or null), ``description``, ``tags``, ``date``,
``architecture``, ``scale``, ``inputChannels``, ``outputChannels``; others are ignored. A card
is optional metadata, so a malformed one never stops the model from loading: it is ignored
with a one-line warning naming the file and the field, and a field of the wrong type is
dropped the same way. ``esrgan info`` and ``esrgan models`` show the description and licence.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path

from pipelines.api import first_line

log = logging.getLogger(__name__)

MAX_CARD_BYTES = 1 << 20
"""A card larger than this is not read (it is a description, not data)."""


@dataclass(frozen=True)
class ModelCard:
    """What a model's card says (empty strings and None where it says nothing)."""

    name: str = ""
    description: str = ""
    licence: str = ""
    author: str = ""
    tags: tuple[str, ...] = ()
    date: str = ""
    architecture: str = ""
    scale: int | None = None
    input_channels: int | None = None
    output_channels: int | None = None

    def describe(self) -> dict[str, object]:
        """The fields the card sets, for ``esrgan info --json`` (``card`` key)."""
        out: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value not in ("", None, ()):
                out[item.name] = list(value) if isinstance(value, tuple) else value
        return out


_TEXT = {
    "name": "name",
    "description": "description",
    "date": "date",
    "architecture": "architecture",
}
_NUMBERS = {
    "scale": "scale",
    "inputChannels": "input_channels",
    "outputChannels": "output_channels",
}


def card_path(model: Path) -> Path:
    """Where the card of a model file is: the same folder and stem, ``.json``."""
    return model.with_suffix(".json")


def read_card(model: Path) -> ModelCard | None:
    """The card beside ``model``, or None when there is none (or it is unreadable: warned)."""
    path = card_path(model)
    if not path.is_file() or path == model:
        return None
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            raise ValueError(f"larger than {MAX_CARD_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        log.warning("model card %s ignored: not readable JSON (%s)", path, first_line(exc))
        return None
    if not isinstance(data, dict):
        log.warning("model card %s ignored: expected a JSON object, found %s", path, _kind(data))
        return None
    values: dict[str, object] = {}
    for key, field_name in _TEXT.items():
        values[field_name] = _text(data, key, path)
    for key, field_name in _NUMBERS.items():
        values[field_name] = _number(data, key, path)
    values["licence"] = _text(data, "license", path)
    values["author"] = ", ".join(_names(data, "author", path))
    values["tags"] = tuple(_names(data, "tags", path))
    return ModelCard(**values)  # type: ignore[arg-type]


def _text(data: dict[str, object], key: str, path: Path) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        log.warning(
            "model card %s: field %r is %s, expected a string; ignored", path, key, _kind(value)
        )
        return ""
    return value.strip()


def _number(data: dict[str, object], key: str, path: Path) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        log.warning(
            "model card %s: field %r is %s, expected a positive whole number; ignored",
            path,
            key,
            _kind(value),
        )
        return None
    return value


def _names(data: dict[str, object], key: str, path: Path) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    log.warning(
        "model card %s: field %r is %s, expected a string or a list of strings; ignored",
        path,
        key,
        _kind(value),
    )
    return []


def _kind(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
