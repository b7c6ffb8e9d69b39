"""Training images from a Zarr v3 store: one (N, H, W, C) array or a group of (H, W, C) arrays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from training.data.pixels import FLOAT_KINDS, INT_DTYPES, to_rgb
from training.data.sources import ImageSource
from training.errors import TrainingError


def _check_zarr_array(array: Any, name: str, ndim: int, layout: str) -> None:
    """Raise a TrainingError unless ``array`` has ``ndim`` dims, 1-4 channels and a usable dtype."""
    dtype = np.dtype(array.dtype)
    if array.ndim != ndim or array.shape[-1] not in (1, 2, 3, 4):
        raise TrainingError(
            f"{name}: expected a {layout} array with C in 1-4, got shape {tuple(array.shape)}"
        )
    if dtype not in INT_DTYPES and dtype.kind not in FLOAT_KINDS:
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


PREPARED_FORMAT = "esrgan-prepared-pairs/1"
"""``format`` attribute of a store made by ``esrgan prepare-data`` (``training.prepare``)."""


def is_prepared(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Zarr group made by ``esrgan prepare-data``."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception:
        return False
    return isinstance(node, zarr.Group) and node.attrs.get("format") == PREPARED_FORMAT


class PreparedZarrSource(ImageSource):
    """HR/LR sub-image pairs made by ``esrgan prepare-data``: each read is one chunk of each."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import zarr

        self.path = Path(path)
        self._group: Any = None
        group = self._open()
        if not bool(np.all(np.asarray(group["done"][...]) == 1)):
            raise TrainingError(
                f"{self.path}: preparation is unfinished; run esrgan prepare-data again to complete it"
            )
        self._count = int(group["hr"].shape[0])
        self._lr_side = int(group["lr"].shape[1])
        self._hr_side = int(group["hr"].shape[1])
        assert isinstance(group, zarr.Group)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the open store; each worker process reopens it."""
        return {**self.__dict__, "_group": None}

    def _open(self) -> Any:
        if self._group is None:
            import zarr

            try:
                self._group = zarr.open_group(str(self.path), mode="r")
            except Exception as exc:
                raise TrainingError(f"{self.path}: cannot open as Zarr ({exc})") from None
        return self._group

    def __len__(self) -> int:
        """Number of sub-image pairs."""
        return self._count

    def name(self, index: int) -> str:
        """``path/hr[index]``."""
        return f"{self.path}/hr[{index}]"

    def shape(self, index: int) -> tuple[int, int]:
        """(crop, crop)."""
        return self._hr_side, self._hr_side

    def read(self, index: int) -> np.ndarray:
        """HR sub-image ``index`` (one chunk)."""
        return to_rgb(np.asarray(self._open()["hr"][index]), self.name(index))

    @property
    def has_lr(self) -> bool:
        """Always: the LR sub-images were made when the data was prepared."""
        return True

    def lr_name(self, index: int) -> str:
        """``path/lr[index]``."""
        return f"{self.path}/lr[{index}]"

    def lr_shape(self, index: int) -> tuple[int, int]:
        """(crop / scale, crop / scale)."""
        return self._lr_side, self._lr_side

    def read_lr(self, index: int) -> np.ndarray:
        """LR sub-image ``index`` (one chunk)."""
        return to_rgb(np.asarray(self._open()["lr"][index]), self.lr_name(index))
