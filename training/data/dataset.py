"""Aligned LR/HR random crops with identical flips and rotations, seeded per sample."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from training.data.pixels import downscale, mod_crop, to_float32
from training.data.sources import ImageSource
from training.errors import TrainingError

Key = tuple[int, int]
"""What ``SRDataset.__getitem__`` takes: (image index, sample seed)."""


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
