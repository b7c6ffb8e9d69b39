"""The files a model consists of and the SHA-256 of their bytes (no PyTorch: the fast start
keys its records by them)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path


def is_ncnn_path(path: str | os.PathLike[str]) -> bool:
    """A ``.param`` file, or a ``.bin`` with a ``.param`` beside it."""
    path = Path(path)
    suffix = path.suffix.lower()
    return suffix == ".param" or (suffix == ".bin" and path.with_suffix(".param").is_file())


def model_files(path: Path) -> list[Path]:
    """The files a model consists of: one, or an ncnn model's ``.param`` and ``.bin``."""
    if is_ncnn_path(path):
        return [path.with_suffix(".param"), path.with_suffix(".bin")]
    return [path]


def file_sha256(paths: Sequence[Path]) -> str:
    """SHA-256 of the bytes of ``paths`` read one after the other (``sha256sum`` for one file)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
