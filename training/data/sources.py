"""Image sources: a folder (optionally with paired LR files) and the photos inside scikit-image."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.api import IMAGE_SUFFIXES, ImageIOError, read_image
from training.data.pixels import to_float32, to_rgb
from training.errors import TrainingError

SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
"""``skimage.data`` images stored inside the wheel (they load offline, without pooch)."""

DEFAULT_SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
"""Natural photos and textures among ``SKIMAGE_PHOTOS`` (no synthetic, duplicate or tiny ones)."""

_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


class ImageSource(ABC):
    """A fixed, ordered collection of HR images (optionally with paired LR images)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of images."""

    @abstractmethod
    def name(self, index: int) -> str:
        """Where image ``index`` comes from, for error messages."""

    @abstractmethod
    def shape(self, index: int) -> tuple[int, int]:
        """(height, width) of image ``index`` (upright), read cheaply where possible."""

    @abstractmethod
    def read(self, index: int) -> np.ndarray:
        """Image ``index`` as (H, W, 3) RGB in its own sample type (uint8, uint16 or float32)."""

    def load(self, index: int) -> np.ndarray:
        """Image ``index`` as float32 RGB in [0, 1]."""
        return to_float32(self.read(index))

    @property
    def has_lr(self) -> bool:
        """Whether the source supplies paired LR images (else they are made by ``imresize``)."""
        return False

    def lr_name(self, index: int) -> str:
        """Where the paired LR image ``index`` comes from."""
        raise TrainingError(f"{self.name(index)}: this source has no paired LR images")

    def lr_shape(self, index: int) -> tuple[int, int]:
        """(height, width) of the paired LR image ``index``."""
        raise TrainingError(f"{self.name(index)}: this source has no paired LR images")

    def read_lr(self, index: int) -> np.ndarray:
        """Paired LR image ``index`` as (H, W, 3) RGB in its own sample type."""
        raise TrainingError(f"{self.name(index)}: this source has no paired LR images")


def image_files(root: Path, recursive: bool) -> list[Path]:
    """Image files under ``root`` (hidden ones skipped), sorted by relative path."""
    candidates = root.rglob("*") if recursive else root.iterdir()
    found = [
        p
        for p in candidates
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _existing_folder(root: str | os.PathLike[str], what: str) -> Path:
    """``root`` as a Path, or a TrainingError if it is not a folder."""
    path = Path(root)
    if not path.is_dir():
        raise TrainingError(f"{path}: {what} folder does not exist")
    return path


def header_shape(path: Path) -> tuple[int, int]:
    """(height, width) of an image file as displayed (EXIF orientation applied), from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise TrainingError(f"{path}: cannot read image header ({exc})") from None
    return (width, height) if orientation in _SWAPPING_ORIENTATIONS else (height, width)


def read_file(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) RGB of its own bit depth, with one-line errors."""
    try:
        return to_rgb(read_image(path), str(path))
    except ImageIOError as exc:
        raise TrainingError(str(exc)) from None


def _pair_lr_files(
    hr_root: Path, hr_files: list[Path], lr_root: Path, recursive: bool
) -> list[Path]:
    """For each HR file, the LR file under ``lr_root`` with the same relative path stem."""
    by_stem: dict[str, list[Path]] = {}
    for path in image_files(lr_root, recursive):
        by_stem.setdefault(path.relative_to(lr_root).with_suffix("").as_posix(), []).append(path)
    paired = []
    for hr in hr_files:
        stem = hr.relative_to(hr_root).with_suffix("").as_posix()
        matches = by_stem.get(stem, [])
        if not matches:
            raise TrainingError(f"{hr}: no paired LR image {stem}.* in {lr_root}")
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise TrainingError(
                f"{hr}: several paired LR images match in {lr_root} ({names}); keep one"
            )
        paired.append(matches[0])
    return paired


class ImageFolderSource(ImageSource):
    """PNG/JPEG/WebP/TIFF (8- or 16-bit) files in a folder, optionally paired with an LR folder."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        recursive: bool = True,
        lr_root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.root = _existing_folder(root, "HR image")
        self.files = image_files(self.root, recursive)
        if not self.files:
            kinds = ", ".join(IMAGE_SUFFIXES)
            raise TrainingError(
                f"{self.root}: no images found ({kinds}{', searched recursively' if recursive else ''})"
            )
        self.lr_root = None if lr_root is None else _existing_folder(lr_root, "LR image")
        self.lr_files = (
            None
            if self.lr_root is None
            else _pair_lr_files(self.root, self.files, self.lr_root, recursive)
        )

    def __len__(self) -> int:
        """Number of HR files."""
        return len(self.files)

    def name(self, index: int) -> str:
        """The HR file's path."""
        return str(self.files[index])

    def shape(self, index: int) -> tuple[int, int]:
        """(height, width) from the file header."""
        return header_shape(self.files[index])

    def read(self, index: int) -> np.ndarray:
        """The decoded HR file."""
        return read_file(self.files[index])

    @property
    def has_lr(self) -> bool:
        """True when an LR folder was given."""
        return self.lr_files is not None

    def lr_name(self, index: int) -> str:
        """The paired LR file's path."""
        return str(self._lr_file(index))

    def lr_shape(self, index: int) -> tuple[int, int]:
        """(height, width) of the paired LR file, from its header."""
        return header_shape(self._lr_file(index))

    def read_lr(self, index: int) -> np.ndarray:
        """The decoded paired LR file."""
        return read_file(self._lr_file(index))

    def _lr_file(self, index: int) -> Path:
        if self.lr_files is None:
            raise TrainingError(f"{self.name(index)}: this source has no paired LR images")
        return self.lr_files[index]


class SkimageSource(ImageSource):
    """Photos shipped inside the scikit-image wheel (``skimage.data``), readable offline."""

    def __init__(self, names: Sequence[str] = DEFAULT_SKIMAGE_PHOTOS) -> None:
        if isinstance(names, str):
            names = [names]
        if not names:
            raise TrainingError("a skimage source needs at least one photo name")
        unknown = [n for n in names if n not in SKIMAGE_PHOTOS]
        if unknown:
            raise TrainingError(
                f"unknown skimage photo(s) {', '.join(unknown)}; choose from {', '.join(SKIMAGE_PHOTOS)}"
            )
        self.names = tuple(names)

    def __len__(self) -> int:
        """Number of photos."""
        return len(self.names)

    def name(self, index: int) -> str:
        """``skimage.data.<name>``."""
        return f"skimage.data.{self.names[index]}"

    def shape(self, index: int) -> tuple[int, int]:
        """(height, width); the photos are small, so this decodes them."""
        height, width = self._raw(index).shape[:2]
        return int(height), int(width)

    def read(self, index: int) -> np.ndarray:
        """The photo as RGB uint8."""
        return to_rgb(self._raw(index), self.name(index))

    def _raw(self, index: int) -> np.ndarray:
        import skimage.data

        try:
            return np.asarray(getattr(skimage.data, self.names[index])())
        except (ImportError, OSError, ValueError) as exc:
            raise TrainingError(f"{self.name(index)}: cannot load ({exc})") from None
