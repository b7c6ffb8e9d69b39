"""What ``esrgan upscale`` will write: each input (image or video) paired with its output path.

Everything that can be refused is refused here, before a model is loaded: unknown inputs and
output formats, outputs that clash or exist, outputs below a file, and output folders that
cannot be written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from esrgan_plugin.errors import UsageError
from pipelines.api import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    expand_inputs,
    is_still_image,
    is_video,
)

Kind = Literal["image", "video"]

VIDEO_FOLDER_SUFFIX = {".avi": ".mkv"}
"""Videos keep their suffix in a folder output, except those whose container cannot be written
(AVI keeps no presentation timestamps): they become Matroska."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    kind: Kind = "image"


def input_kind(path: Path) -> Kind | None:
    """``image`` or ``video`` by suffix (a GIF by its frames); a file with another suffix is
    probed by its content."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES or is_still_image(path):
        return "image"
    if suffix in VIDEO_SUFFIXES or is_video(path):
        return "video"
    return None


def find_inputs(inputs: Sequence[str]) -> list[tuple[Path, Path, Kind]]:
    """(file, name relative to an output folder, kind) for every image and video named."""
    found: list[tuple[Path, Path, Kind]] = []
    seen: set[Path] = set()
    for pattern in inputs:
        root = Path(pattern)
        if root.is_dir():
            files = sorted(
                p
                for p in root.rglob("*")
                if p.is_file() and p.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES)
            )
        elif root.is_file():
            files = [root]
        else:
            files = list(expand_inputs([pattern]))
        for path in files:
            if path in seen:
                continue
            seen.add(path)
            kind = input_kind(path)
            if kind is None:
                raise UsageError(
                    f"{path}: neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a video that "
                    "FFmpeg can open"
                )
            found.append((path, path.relative_to(root) if root.is_dir() else Path(path.name), kind))
    return found


def plan_jobs(inputs: Sequence[str], output: str, ext: str | None, overwrite: bool) -> list[Job]:
    """Pair every input with its output path; refuse clashes before any work starts."""
    sources = find_inputs(inputs)
    if not sources:
        raise UsageError(f"no images or videos found in {' '.join(inputs)}")
    out = Path(output)
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
        if ext.lower() not in IMAGE_SUFFIXES:
            raise UsageError(f"--ext {ext}: not one of {', '.join(IMAGE_SUFFIXES)}")
    one_file_in = len(sources) == 1 and len(inputs) == 1 and Path(inputs[0]).is_file()
    suffixes = IMAGE_SUFFIXES if one_file_in and sources[0][2] == "image" else VIDEO_SUFFIXES
    single_file = one_file_in and out.suffix.lower() in suffixes and not out.is_dir()
    if one_file_in and out.suffix and not single_file and not out.is_dir():
        what = "an image" if sources[0][2] == "image" else "a video"
        raise UsageError(
            f"{out}: unknown output format {out.suffix!r} for {what}; expected one of "
            f"{', '.join(suffixes)} (or an existing folder)"
        )
    for parent in out.parents if single_file else (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{out}: cannot create it, {parent} is a file and not a folder")
    if single_file:
        jobs = [Job(sources[0][0], out, sources[0][2])]
    else:
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out}: several inputs need an output folder, but this is a file")
        jobs = [Job(src, out / _renamed(rel, kind, ext), kind) for src, rel, kind in sources]
    _check_unique(jobs, overwrite)
    check_writable(out, out.parent if single_file else out)
    return jobs


def _renamed(relative: Path, kind: Kind, ext: str | None) -> Path:
    if kind == "image":
        if ext is None and relative.suffix.lower() not in IMAGE_SUFFIXES:
            ext = ".png"  # a still GIF: read, not written
        return relative.with_suffix(ext) if ext else relative
    suffix = VIDEO_FOLDER_SUFFIX.get(relative.suffix.lower(), relative.suffix)
    return relative.with_suffix(suffix)


def _check_unique(jobs: list[Job], overwrite: bool) -> None:
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.target.resolve() == job.source.resolve():
            raise UsageError(f"{job.target}: output would replace its own input")
        if job.target in seen:
            raise UsageError(
                f"{seen[job.target]} and {job.source} would both be written to {job.target}"
            )
        seen[job.target] = job.source
        if job.target.exists() and not overwrite:
            raise UsageError(f"{job.target}: output exists; pass --overwrite to replace it")


def check_writable(output: Path, folder: Path) -> None:
    """Refuse, before any work, an output folder (or its nearest existing parent) that cannot be
    written: a temporary file is created and removed there (permission bits alone miss
    read-only file systems and root)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".esrgan-write-check-", dir=existing)
    except OSError as exc:
        raise UsageError(
            f"{output}: cannot write there ({exc.strerror or exc} in {existing})"
        ) from None
    os.close(fd)
    os.unlink(probe)
