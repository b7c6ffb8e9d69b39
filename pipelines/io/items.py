"""Images as they travel through a pipeline: a lazy Dask array plus what is known about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

    from pipelines.io.images.metadata import ImageMetadata
    from pipelines.io.ome import OmePlane


@dataclass(frozen=True)
class ImageMeta:
    """Facts about an image that stages and writers keep: its name, origin, bit depth, channels.

    ``channels`` is 1 for grey (an (H, W) array), 3 for RGB, 4 for RGBA; ``bit_depth`` is 8 or 16
    for integer samples (``dtype`` says the rest). ``history`` holds one JSON-ready record per
    transform applied (step, stage, parameters, halo, scale), which Zarr outputs keep as attributes.
    ``ome`` says where an image read from OME-Zarr sits in its source image (None otherwise).
    ``file_metadata`` holds the ICC profile and EXIF of an image read from a file (None for
    other sources); ``builtin.write`` writes them into its outputs.
    """

    name: str
    source: str | None
    dtype: str
    channels: int
    index: int = 0
    parent: str = ""
    channel_names: tuple[str, ...] = ()
    history: tuple[Mapping[str, Any], ...] = ()
    ome: OmePlane | None = None
    file_metadata: ImageMetadata | None = None

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

    def with_data(self, data: da.Array, record: Mapping[str, Any] | None = None) -> ImageItem:
        """The same image (name, source, depth) with new pixels, and ``record`` added to its history."""
        meta = (
            self.meta
            if record is None
            else replace(self.meta, history=(*self.meta.history, record))
        )
        return replace(self, data=data, meta=meta)


def channels_of(shape: tuple[int, ...]) -> int:
    """Channel count of an (H, W) or (H, W, C) array shape."""
    return 1 if len(shape) == 2 else int(shape[2])
