"""Seamless tiled inference: tiles with a halo of LR context, batched, cropped after upscaling.

A tile covers ``[start, stop)`` of the LR image; the network sees ``[start - halo, stop + halo)``
clipped to the image, and only the upscaled ``[start, stop)`` part of its output is kept. Tile
starts and the halo are multiples of the network's pixel-unshuffle factor, so every tile groups
pixels exactly as the whole image does. With a halo at least the network's receptive radius
the result equals the whole-image output; smaller halos trade a measured error for speed.

Tiles are torch tensors or NumPy arrays (the command's fast start runs without torch), with the
same grid and the same result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

Network = Callable[[Any], Any]
"""NCHW float batch in, NCHW output ``scale`` times larger out (torch tensors or NumPy arrays)."""
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Span:
    """One axis of one tile: the kept range and the range fed to the network (with halo)."""

    start: int
    stop: int
    padded_start: int
    padded_stop: int


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def axis_spans(length: int, tile: int, halo: int, multiple: int = 1) -> list[Span]:
    """Split ``[0, length)`` into tiles of ``tile`` pixels, each padded by ``halo`` on both sides."""
    tile = max(multiple, round_up(tile, multiple))
    halo = round_up(halo, multiple)
    spans = []
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        spans.append(Span(start, stop, max(0, start - halo), min(length, stop + halo)))
    return spans


@dataclass(frozen=True)
class Tile:
    rows: Span
    cols: Span

    @property
    def input_shape(self) -> tuple[int, int]:
        return (
            self.rows.padded_stop - self.rows.padded_start,
            self.cols.padded_stop - self.cols.padded_start,
        )


def make_tiles(height: int, width: int, tile: int, halo: int, multiple: int = 1) -> list[Tile]:
    """All tiles of an image, row-major."""
    return [
        Tile(r, c)
        for r in axis_spans(height, tile, halo, multiple)
        for c in axis_spans(width, tile, halo, multiple)
    ]


def batches_by_shape(tiles: list[Tile], batch_size: int) -> Iterator[list[Tile]]:
    """Group tiles of identical input shape into batches (interior tiles share one shape)."""
    groups: dict[tuple[int, int], list[Tile]] = defaultdict(list)
    for t in tiles:
        groups[t.input_shape].append(t)
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            yield group[i : i + batch_size]


def run_tiled(
    network: Network,
    image: Any,
    scale: int,
    tile: int,
    halo: int,
    multiple: int = 1,
    batch_size: int = 1,
    device: torch.device | None = None,
    progress: Progress | None = None,
) -> Any:
    """Apply ``network`` (x ``scale``) to an NCHW ``image`` tile by tile; N must be 1.

    Tiles are moved to ``device`` (the image may stay on the CPU) and results collected in a
    float32 CPU tensor the size of the output, so device memory is bounded by the tile size.
    A NumPy ``image`` stays NumPy (``device`` unused) and gives a float32 NumPy output.
    """
    if image.shape[0] != 1:
        raise ValueError("run_tiled expects a single image (N = 1)")
    _, _, height, width = image.shape
    arrays = _ArrayOps() if isinstance(image, np.ndarray) else _TensorOps(device or image.device)
    tiles = make_tiles(height, width, tile, halo, multiple)
    output: Any = None
    done = 0
    for batch in batches_by_shape(tiles, max(1, batch_size)):
        inputs = arrays.batch(
            [
                image[
                    ...,
                    t.rows.padded_start : t.rows.padded_stop,
                    t.cols.padded_start : t.cols.padded_stop,
                ]
                for t in batch
            ]
        )
        result = arrays.collect(network(inputs))
        if output is None:
            output = arrays.empty((1, result.shape[1], height * scale, width * scale))
        for t, out in zip(batch, result, strict=True):
            r0 = (t.rows.start - t.rows.padded_start) * scale
            c0 = (t.cols.start - t.cols.padded_start) * scale
            rh = (t.rows.stop - t.rows.start) * scale
            cw = (t.cols.stop - t.cols.start) * scale
            output[
                0,
                :,
                t.rows.start * scale : t.rows.stop * scale,
                t.cols.start * scale : t.cols.stop * scale,
            ] = out[:, r0 : r0 + rh, c0 : c0 + cw]
        done += len(batch)
        if progress is not None:
            progress(done, len(tiles))
    assert output is not None
    return output


class _ArrayOps:
    """How :func:`run_tiled` batches, collects and allocates NumPy arrays."""

    def batch(self, parts: list[Any]) -> Any:
        return np.concatenate(parts)

    def collect(self, result: Any) -> Any:
        return np.asarray(result, dtype=np.float32)

    def empty(self, shape: tuple[int, ...]) -> Any:
        return np.empty(shape, dtype=np.float32)


class _TensorOps:
    """How :func:`run_tiled` batches (on ``device``), collects (on the CPU) and allocates tensors."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def batch(self, parts: list[Any]) -> Any:
        import torch

        return torch.cat(parts).to(self.device, non_blocking=True)

    def collect(self, result: Any) -> Any:
        return result.float().to("cpu")

    def empty(self, shape: tuple[int, ...]) -> Any:
        import torch

        return torch.empty(shape, dtype=torch.float32)
