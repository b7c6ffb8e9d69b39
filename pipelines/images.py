"""Images as they travel through a pipeline: a lazy Dask array plus what is known about it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import dask.array as da


@dataclass(frozen=True)
class ImageMeta:
    """Facts about an image that stages and writers keep: its name, origin, bit depth, channels.

    ``channels`` is 1 for grey (an (H, W) array), 3 for RGB, 4 for RGBA; ``bit_depth`` is 8 or 16
    for integer samples (``dtype`` says the rest).
    """

    name: str
    source: str | None
    dtype: str
    channels: int
    index: int = 0
    parent: str = ""

    @property
    def bit_depth(self) -> int:
        """Bits per sample: 8, 16, or 32 for float data."""
        return int(np.dtype(self.dtype).itemsize * 8)

    @property
    def has_alpha(self) -> bool:
        return self.channels == 4


@dataclass(frozen=True)
class ImageItem:
    """One image of a batch: ``data`` is (H, W) or (H, W, C), lazily computed by Dask."""

    data: da.Array
    meta: ImageMeta

    def with_data(self, data: da.Array) -> ImageItem:
        """The same image (name, source, depth) with new pixels."""
        return replace(self, data=data)


def channels_of(shape: tuple[int, ...]) -> int:
    """Channel count of an (H, W) or (H, W, C) array shape."""
    return 1 if len(shape) == 2 else int(shape[2])
