"""Training data: image sources, aligned LR/HR random crops, and a resumable batch schedule.

Sources (a folder with an optional paired LR folder, a Zarr array or group, the photos inside the
scikit-image wheel) read whole RGB images. ``SRDataset`` turns one image into an aligned LR/HR crop
pair: the LR image is made once per image with MATLAB's bicubic ``imresize`` of the whole HR image
(as pre-generated LR datasets are) and kept in a per-process cache, then both are cropped, flipped
and rotated identically. Randomness comes only from a per-sample seed derived from (seed, iteration,
slot in batch), so batches do not depend on worker processes or on where a run was resumed.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from pipelines.errors import ImageIOError
from pipelines.imageio import IMAGE_SUFFIXES, read_image
from pipelines.imresize import imresize
from training.errors import TrainingError

if TYPE_CHECKING:
    from training.config import SourceSection, TrainConfig

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
_FLOAT_KINDS = ("f",)
_INT_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))

Key = tuple[int, int]
"""What ``SRDataset.__getitem__`` takes: (image index, sample seed)."""


# --------------------------------------------------------------------------- pixel conversions


def to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W, 3) view of a grey, grey+alpha, RGB or RGBA image; uint8/uint16 kept, floats -> float32."""
    array = np.asarray(array)
    if array.dtype not in _INT_DTYPES and array.dtype.kind not in _FLOAT_KINDS:
        raise TrainingError(
            f"{name}: unsupported sample type {array.dtype}; use uint8, uint16 or float"
        )
    if array.dtype.kind in _FLOAT_KINDS:
        array = array.astype(np.float32, copy=False)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise TrainingError(
            f"{name}: expected an (H, W) or (H, W, C) image with C in 1-4, got shape {array.shape}"
        )
    channels = array.shape[2]
    if channels <= 2:
        return np.repeat(array[:, :, :1], 3, axis=2)
    return array[:, :, :3]


def to_float32(array: np.ndarray) -> np.ndarray:
    """Samples in [0, 1] as float32: uint8 / 255, uint16 / 65535 (exact), floats clipped."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0)
    return np.clip(array, 0.0, 1.0).astype(np.float32, copy=False)


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR image by MATLAB bicubic ``imresize``; integers stay in their dtype (as saved LR files)."""
    if scale == 1:
        return hr.copy()
    shape = (hr.shape[0] // scale, hr.shape[1] // scale)
    lr = imresize(hr, output_shape=shape)
    if lr.dtype.kind in _FLOAT_KINDS:
        lr = np.clip(lr, 0.0, 1.0).astype(np.float32)
    return lr


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` cropped at the bottom/right to a multiple of ``scale`` in both dimensions."""
    height, width = image.shape[0], image.shape[1]
    return image[: height - height % scale, : width - width % scale]


# --------------------------------------------------------------------------- sources


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


def _image_files(root: Path, recursive: bool) -> list[Path]:
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


def _header_shape(path: Path) -> tuple[int, int]:
    """(height, width) of an image file as displayed (EXIF orientation applied), from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise TrainingError(f"{path}: cannot read image header ({exc})") from None
    return (width, height) if orientation in _SWAPPING_ORIENTATIONS else (height, width)


def _read_file(path: Path) -> np.ndarray:
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
    for path in _image_files(lr_root, recursive):
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
        self.files = _image_files(self.root, recursive)
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
        return _header_shape(self.files[index])

    def read(self, index: int) -> np.ndarray:
        """The decoded HR file."""
        return _read_file(self.files[index])

    @property
    def has_lr(self) -> bool:
        """True when an LR folder was given."""
        return self.lr_files is not None

    def lr_name(self, index: int) -> str:
        """The paired LR file's path."""
        return str(self._lr_file(index))

    def lr_shape(self, index: int) -> tuple[int, int]:
        """(height, width) of the paired LR file, from its header."""
        return _header_shape(self._lr_file(index))

    def read_lr(self, index: int) -> np.ndarray:
        """The decoded paired LR file."""
        return _read_file(self._lr_file(index))

    def _lr_file(self, index: int) -> Path:
        if self.lr_files is None:
            raise TrainingError(f"{self.name(index)}: this source has no paired LR images")
        return self.lr_files[index]


def _check_zarr_array(array: Any, name: str, ndim: int, layout: str) -> None:
    """Raise a TrainingError unless ``array`` has ``ndim`` dims, 1-4 channels and a usable dtype."""
    dtype = np.dtype(array.dtype)
    if array.ndim != ndim or array.shape[-1] not in (1, 2, 3, 4):
        raise TrainingError(
            f"{name}: expected a {layout} array with C in 1-4, got shape {tuple(array.shape)}"
        )
    if dtype not in _INT_DTYPES and dtype.kind not in _FLOAT_KINDS:
        raise TrainingError(f"{name}: unsupported dtype {dtype}; use uint8, uint16 or float")


class ZarrSource(ImageSource):
    """Images in a Zarr v3 store: one (N, H, W, C) array, or a group of (H, W, C) arrays."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._node: Any = None
        node = self._open()
        if self._is_group(node):
            self.keys: tuple[str, ...] | None = tuple(sorted(node.array_keys()))
            if not self.keys:
                raise TrainingError(f"{self.path}: Zarr group holds no arrays")
            for key in self.keys:
                _check_zarr_array(node[key], self.name_of_key(key), 3, "(H, W, C)")
            self._count = len(self.keys)
        else:
            self.keys = None
            _check_zarr_array(node, str(self.path), 4, "(N, H, W, C)")
            self._count = int(node.shape[0])
            if self._count == 0:
                raise TrainingError(f"{self.path}: Zarr array holds no images (N = 0)")

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the open store; each worker process reopens it."""
        return {**self.__dict__, "_node": None}

    @staticmethod
    def _is_group(node: Any) -> bool:
        import zarr

        return isinstance(node, zarr.Group)

    def _open(self) -> Any:
        """The store's root node, opened read-only once per process."""
        if self._node is None:
            import zarr

            if not self.path.exists():
                raise TrainingError(f"{self.path}: Zarr store does not exist")
            try:
                self._node = zarr.open(str(self.path), mode="r")
            except Exception as exc:  # zarr raises many types for a malformed store
                raise TrainingError(f"{self.path}: cannot open as Zarr ({exc})") from None
        return self._node

    def name_of_key(self, key: str) -> str:
        """Display name of a group member."""
        return f"{self.path}/{key}"

    def __len__(self) -> int:
        """Number of images."""
        return self._count

    def name(self, index: int) -> str:
        """``path[index]`` for an array, ``path/key`` for a group member."""
        if self.keys is None:
            return f"{self.path}[{index}]"
        return self.name_of_key(self.keys[index])

    def shape(self, index: int) -> tuple[int, int]:
        """(height, width) from the array metadata."""
        node = self._open()
        shape = node.shape[1:3] if self.keys is None else node[self.keys[index]].shape[:2]
        return int(shape[0]), int(shape[1])

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` read from the store."""
        node = self._open()
        array = node[index] if self.keys is None else node[self.keys[index]][...]
        return to_rgb(np.asarray(array), self.name(index))


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


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class CropConfig:
    """How training pairs are cut: HR crop side, scale, the paper's flips/rotations, cache size."""

    scale: int = 4
    hr_size: int = 128
    flips: bool = True
    rotations: bool = True
    cache_mb: int = 2048

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise TrainingError(f"scale must be a positive integer, got {self.scale}")
        if self.hr_size < 1 or self.hr_size % self.scale:
            raise TrainingError(
                f"hr_size {self.hr_size} must be a positive multiple of scale {self.scale}"
            )
        if self.cache_mb < 0:
            raise TrainingError(f"cache_mb must be >= 0, got {self.cache_mb}")

    @property
    def lr_size(self) -> int:
        """LR crop side."""
        return self.hr_size // self.scale


class _PairCache:
    """Least-recently-used (HR, LR) arrays of whole images, bounded in bytes; one per process."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.size = 0

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached pair for ``index``, marked as recently used, or None."""
        pair = self.entries.get(index)
        if pair is not None:
            self.entries.move_to_end(index)
        return pair

    def put(self, index: int, pair: tuple[np.ndarray, np.ndarray]) -> None:
        """Keep ``pair`` if it fits, evicting the least recently used entries."""
        nbytes = pair[0].nbytes + pair[1].nbytes
        if nbytes > self.max_bytes:
            return
        while self.size + nbytes > self.max_bytes:
            _, old = self.entries.popitem(last=False)
            self.size -= old[0].nbytes + old[1].nbytes
        self.entries[index] = pair
        self.size += nbytes


def _augment(images: list[np.ndarray], flags: np.ndarray) -> list[np.ndarray]:
    """Apply the same horizontal flip, vertical flip and transpose (90-degree rotation) to each."""
    hflip, vflip, transpose = (bool(f) for f in flags)
    out = []
    for image in images:
        if hflip:
            image = image[:, ::-1]
        if vflip:
            image = image[::-1]
        if transpose:
            image = image.transpose(1, 0, 2)
        out.append(image)
    return out


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) samples -> (C, H, W) float32 tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(to_float32(image).transpose(2, 0, 1)))


class SRDataset(Dataset[dict[str, torch.Tensor]]):
    """Aligned random LR/HR crops; indexed by (image index, sample seed) pairs from ``BatchSchedule``."""

    def __init__(self, source: ImageSource, config: CropConfig | None = None) -> None:
        self.source = source
        self.config = config or CropConfig()
        self._cache = _PairCache(self.config.cache_mb << 20)
        if len(source) == 0:
            raise TrainingError("the training source holds no images")
        for index in range(len(source)):
            self._check_sizes(index)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle with an empty cache: each worker process fills its own."""
        return {**self.__dict__, "_cache": _PairCache(self.config.cache_mb << 20)}

    def __len__(self) -> int:
        """Number of images (not crops)."""
        return len(self.source)

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor]:
        """The crop pair for ``key = (image index, sample seed)``: {"lr": (C,h,w), "hr": (C,H,W)}."""
        index, sample_seed = key
        hr, lr = self.pair(index)
        rng = np.random.default_rng(sample_seed)
        lr_crop, hr_crop = self._crop(lr, hr, rng)
        flags = rng.random(3) < 0.5
        flags &= np.array([self.config.flips, self.config.flips, self.config.rotations])
        lr_crop, hr_crop = _augment([lr_crop, hr_crop], flags)
        return {"lr": _to_tensor(lr_crop), "hr": _to_tensor(hr_crop)}

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Whole (HR, LR) images of ``index`` in their own sample type, cached in this process."""
        cached = self._cache.get(index)
        if cached is None:
            cached = whole_pair(self.source, index, self.config.scale)
            self._cache.put(index, cached)
        return cached

    def _crop(
        self, lr: np.ndarray, hr: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """An aligned random crop: LR pixel (y, x) covers HR pixels [y*s, (y+1)*s) x [x*s, (x+1)*s)."""
        size, scale = self.config.lr_size, self.config.scale
        top = int(rng.integers(0, lr.shape[0] - size + 1))
        left = int(rng.integers(0, lr.shape[1] - size + 1))
        lr_crop = lr[top : top + size, left : left + size]
        hr_crop = hr[top * scale : (top + size) * scale, left * scale : (left + size) * scale]
        return lr_crop, hr_crop

    def _check_sizes(self, index: int) -> None:
        """Refuse, before training starts, images too small for the crop or badly paired LR files."""
        scale, hr_size = self.config.scale, self.config.hr_size
        height, width = self.source.shape(index)
        if min(height - height % scale, width - width % scale) < hr_size:
            raise TrainingError(
                f"{self.source.name(index)}: image is {width}x{height}, smaller than the "
                f"{hr_size}x{hr_size} training crop (use larger images or a smaller hr_size)"
            )
        if self.source.has_lr:
            check_lr_shape(self.source, index, (height, width), self.source.lr_shape(index), scale)


def whole_pair(source: ImageSource, index: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR cropped to a multiple of ``scale``, LR) of one image: the paired LR file or ``imresize``."""
    hr = source.read(index)
    lr = source.read_lr(index) if source.has_lr else None
    if lr is not None:
        check_lr_shape(source, index, hr.shape[:2], lr.shape[:2], scale)
    hr = np.ascontiguousarray(mod_crop(hr, scale))
    return hr, downscale(hr, scale) if lr is None else lr


def check_lr_shape(
    source: ImageSource, index: int, hr_shape: Sequence[int], lr_shape: Sequence[int], scale: int
) -> None:
    """Raise a TrainingError naming the LR file unless it is (HR height, HR width) // scale."""
    expected = (hr_shape[0] // scale, hr_shape[1] // scale)
    if tuple(lr_shape) != expected:
        raise TrainingError(
            f"{source.lr_name(index)}: LR image is {lr_shape[1]}x{lr_shape[0]}, expected "
            f"{expected[1]}x{expected[0]} (HR {source.name(index)} is {hr_shape[1]}x{hr_shape[0]}, scale {scale})"
        )


# --------------------------------------------------------------------------- batch schedule


def sample_seed(seed: int, iteration: int, slot: int) -> int:
    """The seed of one sample's crop and augmentation, from (seed, iteration, slot in batch) only."""
    return int(np.random.SeedSequence([seed, 1, iteration, slot]).generate_state(1, np.uint64)[0])


def epoch_permutation(seed: int, epoch: int, num_images: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the images."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0, epoch])).permutation(num_images)


class BatchSchedule:
    """Infinite batches of (image index, sample seed) keys, starting at ``start_iteration``.

    Sample ``j`` of iteration ``i`` is the ``(i * batch_size + j)``-th draw of an endless walk
    through per-epoch permutations, so any iteration's keys can be computed directly: a resumed
    run draws exactly what an uninterrupted one would.
    """

    def __init__(
        self, num_images: int, batch_size: int, seed: int, start_iteration: int = 0
    ) -> None:
        if num_images < 1:
            raise TrainingError("the training source holds no images")
        if batch_size < 1:
            raise TrainingError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0 or start_iteration < 0:
            raise TrainingError(
                f"seed and start_iteration must be >= 0, got {seed} and {start_iteration}"
            )
        self.num_images = num_images
        self.batch_size = batch_size
        self.seed = seed
        self.start_iteration = start_iteration
        self._permutation: tuple[int, np.ndarray] | None = None

    def keys(self, iteration: int) -> list[Key]:
        """The (image index, sample seed) pairs of ``iteration``'s batch."""
        first = iteration * self.batch_size
        return [
            (self._image_at(first + slot), sample_seed(self.seed, iteration, slot))
            for slot in range(self.batch_size)
        ]

    def _image_at(self, position: int) -> int:
        """Image index of the ``position``-th draw overall."""
        epoch, offset = divmod(position, self.num_images)
        if self._permutation is None or self._permutation[0] != epoch:
            self._permutation = (epoch, epoch_permutation(self.seed, epoch, self.num_images))
        return int(self._permutation[1][offset])

    def __iter__(self) -> Iterator[list[Key]]:
        """Batches for iterations start_iteration, start_iteration + 1, ..."""
        iteration = self.start_iteration
        while True:
            yield self.keys(iteration)
            iteration += 1


@dataclass(frozen=True)
class _Failure:
    """A worker's TrainingError, carried back so the main process raises it as a one-line error."""

    message: str


class _SafeDataset(Dataset[Any]):
    """Wraps an SRDataset so that TrainingErrors become ``_Failure`` values instead of tracebacks."""

    def __init__(self, dataset: SRDataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor] | _Failure:
        try:
            return self.dataset[key]
        except TrainingError as exc:
            return _Failure(str(exc))

    def __len__(self) -> int:
        return len(self.dataset)


def _collate(
    samples: list[dict[str, torch.Tensor] | _Failure],
) -> dict[str, torch.Tensor] | _Failure:
    """Stack samples into a batch, or pass the first failure through."""
    for sample in samples:
        if isinstance(sample, _Failure):
            return sample
    return default_collate(samples)


def training_batches(
    dataset: SRDataset,
    batch_size: int,
    seed: int,
    start_iteration: int = 0,
    num_workers: int = 0,
    pin_memory: bool | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless collated batches {"lr", "hr"} for iterations start_iteration, start_iteration + 1, ...

    ``num_workers`` > 0 loads in that many persistent worker processes; the batches are the same
    either way. ``pin_memory`` defaults to whether CUDA is available.
    """
    if num_workers < 0:
        raise TrainingError(f"num_workers must be >= 0, got {num_workers}")
    schedule = BatchSchedule(len(dataset), batch_size, seed, start_iteration)
    loader = DataLoader(
        _SafeDataset(dataset),
        batch_sampler=schedule,
        num_workers=num_workers,
        collate_fn=_collate,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
    )
    return _raise_failures(iter(loader))


def _raise_failures(batches: Iterator[Any]) -> Iterator[dict[str, torch.Tensor]]:
    """Yield batches, raising a carried-back failure as a TrainingError."""
    for batch in batches:
        if isinstance(batch, _Failure):
            break
        yield batch
    else:
        return
    del batches  # stop the worker processes now, not when the traceback is garbage-collected
    raise TrainingError(batch.message)


# --------------------------------------------------------------------------- validation


def load_validation_pairs(source: ImageSource, scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole (LR, HR) images for PSNR/SSIM: HR cropped to a multiple of ``scale``, LR by ``imresize``.

    Samples keep the source's type (uint8 for 8-bit files) so metrics match the usual uint8
    evaluation; paired LR files are used as they are when the source has them.
    """
    if scale < 1:
        raise TrainingError(f"scale must be a positive integer, got {scale}")
    pairs = []
    for index in range(len(source)):
        hr, lr = whole_pair(source, index, scale)
        pairs.append((lr, hr))
    return pairs


# --------------------------------------------------------------------------- from a config


def source_from_config(section: SourceSection, config: TrainConfig) -> ImageSource:
    """The image source a config section describes (paths relative to the config file)."""
    if section.kind == "skimage":
        return SkimageSource(section.names)
    assert section.path is not None  # the config validates this
    if section.kind == "zarr":
        return ZarrSource(config.resolve(section.path))
    lr_root = None if section.lr_path is None else config.resolve(section.lr_path)
    return ImageFolderSource(config.resolve(section.path), lr_root=lr_root)


def make_training_batches(
    config: TrainConfig, start_iteration: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """``training_batches`` for an experiment's data section, seed and scale."""
    crops = CropConfig(scale=config.model.scale, hr_size=config.data.hr_size)
    dataset = SRDataset(source_from_config(config.data.train, config), crops)
    return training_batches(
        dataset, config.data.batch_size, config.seed, start_iteration, config.data.num_workers
    )


def validation_pairs_from_config(config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """``load_validation_pairs`` for an experiment's validation source (empty when it has none)."""
    if config.data.validation is None:
        return []
    return load_validation_pairs(
        source_from_config(config.data.validation, config), config.model.scale
    )
