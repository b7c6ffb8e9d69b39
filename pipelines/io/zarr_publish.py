"""Zarr and OME-Zarr outputs become visible as images only when complete.

Every reader, not only ours, must be unable to take a half-written output for a finished one
(its unwritten chunks read as zeros). So a local output ``out/slide.zarr`` is written as the
hidden sibling ``out/.slide.zarr.unfinished`` and renamed into place when its last chunk (and
pyramid level) is stored; ``out/slide.zarr`` therefore exists only complete. A URL output
(``s3://...``: object stores cannot rename) is written in place, and an OME-Zarr image's
``ome`` metadata, which makes its group an image for ``ome_zarr`` and NGFF validators, is
written last, at the same moment. Until then our outputs carry :data:`UNFINISHED_ATTR`, which
:func:`refuse_unfinished` (used by the project's readers) turns into a message saying how to
resume. A killed run's work path is what a re-run of the same job resumes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.errors import ImageIOError

UNFINISHED_ATTR = "pipelines_unfinished"
"""Attribute of an output array or group that is still being written (removed when published)."""

SUFFIX = ".unfinished"
"""Suffix of the hidden work path beside a local output."""

RESUME_HINT = "run the same pipeline again to resume it (or set restart: true to start over)"


def work_path(target: str) -> str:
    """Where ``target`` is written until complete: ``.NAME.unfinished`` beside it; a URL itself."""
    if "://" in target:
        return target
    path = Path(target.rstrip("/\\") or target)
    return str(path.parent / f".{path.name}{SUFFIX}")


def output_name(path: str) -> str:
    """The output a path belongs to, for messages: ``out/.slide.zarr.unfinished/0`` ->
    ``out/slide.zarr/0`` (the work path's part replaced by the output's name)."""
    parts = str(path).split("/")
    named = [
        p[1 : -len(SUFFIX)]
        if p.startswith(".") and p.endswith(SUFFIX) and len(p) > 1 + len(SUFFIX)
        else p
        for p in parts
    ]
    return "/".join(named)


def reopen(target: str, work: str) -> None:
    """Move a published but unfinished output (an older version's, or one whose completion record
    says chunks are missing) back to its work path before resuming it, so that it is not visible
    while it is completed."""
    if work == target or not Path(target).exists() or Path(work).exists():
        return
    os.rename(target, work)
    _mark(work)


def _mark(path: str) -> None:
    import zarr

    node = zarr.open(path, mode="r+")
    node.attrs[UNFINISHED_ATTR] = True


def publish(
    work: str, target: str, members: tuple[str, ...] = (), extra: Mapping[str, Any] | None = None
) -> str:
    """Make the finished output at ``work`` visible as ``target``; returns ``target``.

    Clears :data:`UNFINISHED_ATTR` on ``work`` and on its ``members`` (pyramid levels), adds
    ``extra`` attributes (OME-Zarr: ``ome``) to ``work``, then renames ``work`` to ``target``,
    replacing what was there (an older output: replacing it was allowed when the run was planned).
    Idempotent: once published, a second call (a lost worker's retry) finds ``target`` complete.
    """
    import zarr

    if work != target and not Path(work).exists() and Path(target).exists():
        return target  # published already
    for member in members:
        zarr.open(f"{work}/{member}", mode="r+").attrs.pop(UNFINISHED_ATTR, None)
    node = zarr.open(work, mode="r+")
    if extra:
        node.attrs.update(dict(extra))
    node.attrs.pop(UNFINISHED_ATTR, None)
    if work == target:
        return target
    try:
        _rename_into_place(Path(work), Path(target))
    except OSError as exc:
        raise ImageIOError(
            f"{target}: cannot rename the finished output {work} into place "
            f"({exc.strerror or exc}); run the same pipeline again to finish it"
        ) from None
    return target


def _rename_into_place(work: Path, target: Path) -> None:
    """``work`` -> ``target``; an existing ``target`` is moved aside first and removed after."""
    if not target.exists():
        os.rename(work, target)
        return
    aside = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:8]}"
    os.rename(target, aside)
    try:
        os.rename(work, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.rename(aside, target)  # put the old output back
        raise
    shutil.rmtree(aside, ignore_errors=True)


def refuse_unfinished(path: str, attributes: Mapping[str, Any] | None = None) -> None:
    """Refuse to read an output that a run has not finished writing (one-line error saying how
    to resume). ``attributes``: the node's, when the caller has opened it; else only the work
    path beside a missing local ``path`` is looked for."""
    text = str(path).rstrip("/\\")
    if attributes is not None and attributes.get(UNFINISHED_ATTR):
        raise ImageIOError(
            f"{text}: unfinished: a run writing it stopped before the end; {RESUME_HINT}"
        )
    if "://" in text or Path(text).exists():
        return
    work = work_path(text)
    if Path(work).exists():
        raise ImageIOError(
            f"{text}: unfinished: a run writing it stopped before the end (the chunks it finished "
            f"are in {work}); {RESUME_HINT}"
        )
