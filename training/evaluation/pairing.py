"""How ``esrgan eval`` finds the HR (or LR) image that belongs to each SR image.

Rules, applied to each SR file's path relative to the SR folder it was found in (just its name
for a file given directly):

0. A single file given as the reference (``--hr baboon.png``) is every SR image's partner,
   whatever the names (one image's outputs of several models, or ``baboon_lr.png`` with
   ``baboon_hr.png``).
1. Same sub-folder, same stem, any image extension: ``sr/set5/baby.png`` pairs with
   ``hr/set5/baby.jpg``.
2. Otherwise, in the same sub-folder, the HR file whose stem is the longest one that the SR
   stem starts with, followed by ``_``, ``-`` or ``.``: ``baboon_x4.png``, ``baboon-esrgan.png``
   and ``baboon.sr.png`` pair with ``baboon.png`` (and ``img_01_x4.png`` with ``img_01.png``
   rather than ``img.png``).
3. Two HR files with the same stem (``baboon.png`` and ``baboon.jpg``) make the match
   ambiguous: that SR file is reported as an error.

An SR file with no partner is reported as an error naming it; the others are still evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipelines.api import expand_inputs

SEPARATORS = ("_", "-", ".")


@dataclass(frozen=True)
class Found:
    """An image file and its path relative to the folder (or glob) it was found under."""

    path: Path
    relative: PurePosixPath


def find_images(inputs: Sequence[str]) -> list[Found]:
    """Every image under ``inputs`` (files, globs, folders searched recursively), sorted."""
    found: list[Found] = []
    for pattern in inputs:
        root = Path(pattern)
        for path in expand_inputs([pattern]):
            rel = path.relative_to(root) if root.is_dir() else Path(path.name)
            found.append(Found(path, PurePosixPath(rel.as_posix())))
    return found


def reference_index(pattern: str, role: str) -> PartnerIndex:
    """The partners ``--hr`` or ``--lr`` names: a folder or glob paired by the rules above, or a
    single file (rule 0)."""
    images = find_images([pattern])
    single = images[0].path if len(images) == 1 and Path(pattern).is_file() else None
    return PartnerIndex(images, role, single)


class PartnerIndex:
    """Images of a reference folder by (sub-folder, stem), for the pairing rules above;
    ``single``: the one file every SR image pairs with (rule 0)."""

    def __init__(self, images: Iterable[Found], role: str, single: Path | None = None) -> None:
        self.role = role
        self.single = single
        self.by_key: dict[tuple[str, str], list[Found]] = {}
        for image in images:
            key = (str(image.relative.parent), image.relative.stem)
            self.by_key.setdefault(key, []).append(image)

    def partner(self, relative: PurePosixPath, source: Path) -> Path:
        """The reference file for an SR file's relative path, or a ValueError naming both sides."""
        if self.single is not None:
            return self.single
        folder, stem = str(relative.parent), relative.stem
        candidates = self.by_key.get((folder, stem))
        if candidates is None:
            prefixes = [
                s
                for (f, s) in self.by_key
                if f == folder and len(s) < len(stem) and stem[len(s)] in SEPARATORS
                if stem.startswith(s)
            ]
            if prefixes:
                candidates = self.by_key[(folder, max(prefixes, key=len))]
        if not candidates:
            where = "" if folder == "." else f" in {folder}/"
            raise ValueError(
                f"{source}: no {self.role} image pairs with it (looked for {stem}.* or a "
                f"shorter stem followed by _, - or .{where})"
            )
        if len(candidates) > 1:
            names = ", ".join(str(c.path) for c in candidates)
            raise ValueError(f"{source}: ambiguous {self.role} partner: {names}")
        return candidates[0].path
