"""Counted nouns in messages: ``1 step``, ``2 steps``, never ``1 steps`` or ``2 step(s)``."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``number`` and ``noun``, in the plural unless ``number`` is 1 (``plural``: an irregular one)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
