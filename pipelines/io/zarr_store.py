"""Zarr output arrays: checksummed creation, the completion record, and storing one block.

Chunks are compressed with zstd and then checksummed (CRC-32C), so a damaged chunk fails to
read instead of reading back wrong. Every computed chunk is stored (``write_empty_chunks``), and
the completion record ``<array>/.done`` (one uint8 per output chunk) is set only after a block's
chunks have been stored: the record, not the presence of a chunk key, says what is finished,
so a killed run's partly written block is recomputed when the job is resumed. The arrays are
created at a work path and published when complete (:mod:`pipelines.io.zarr_publish`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipelines.errors import ImageIOError
from pipelines.io.zarr_publish import output_name

RECORD = ".done"
"""Name of the completion record, an array stored inside the output array's folder."""

JOB_ATTR = "pipelines_job"
"""Attribute holding the fingerprint of the job that made an output (its inputs, stages and parameters)."""

RUN_ATTR = "pipelines_run"
"""Attribute holding the id of the run that created an output, so that creating it again is a no-op."""

Mode = Literal["create", "replace", "resume"]
Region = tuple[slice, ...]


@dataclass(frozen=True)
class OutputSpec:
    """An output array to create: where, its shape, dtype, chunks, axis names and attributes."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    dimension_names: tuple[str, ...]
    attributes: Mapping[str, Any]

    @property
    def grid(self) -> tuple[int, ...]:
        """Chunks along each axis."""
        return tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunks, strict=True))


@dataclass(frozen=True)
class Existing:
    """An output array already at the target path: the job that made it and its finished chunks."""

    job: str | None
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    done: np.ndarray


def inspect_output(path: str) -> Existing | None:
    """What is at ``path``: None if nothing, an :class:`Existing` array, or an error for anything else."""
    import zarr

    try:
        node = zarr.open(path, mode="r")
    except FileNotFoundError:  # nothing there, or something that is not Zarr
        node = None
    except Exception as exc:
        raise ImageIOError(
            f"{path}: cannot inspect the existing output ({type(exc).__name__}: {exc})"
        ) from None
    if node is None:
        if "://" not in path and Path(path).exists():
            raise ImageIOError(f"{path}: exists and is not a Zarr array; refusing to replace it")
        return None
    if not isinstance(node, zarr.Array):
        raise ImageIOError(f"{path}: is a Zarr group, not an array; refusing to replace it")
    from pipelines.io.zarr_source import check_blocks

    try:
        job = node.attrs.get(JOB_ATTR)
        shape, chunks, dtype = tuple(node.shape), tuple(node.chunks), str(node.dtype)
        if len(chunks) != len(shape) or min(chunks, default=1) < 1:
            raise ValueError(f"chunks {chunks} do not fit shape {shape}")
    except Exception as exc:
        raise ImageIOError(
            f"{path}: cannot inspect the existing output ({type(exc).__name__}: {' '.join(str(exc).split())})"
        ) from None
    check_blocks(path, shape, chunks)  # the completion record has one cell per chunk
    grid = tuple(math.ceil(n / c) for n, c in zip(shape, chunks, strict=True))
    return Existing(
        job if isinstance(job, str) else None, shape, dtype, chunks, read_record(path, grid)
    )


def read_record(path: str, grid: tuple[int, ...]) -> np.ndarray:
    """Which output chunks are finished (a boolean grid); none when the record is missing or does not fit."""
    import zarr

    try:
        record = zarr.open_array(f"{path}/{RECORD}", mode="r")
    except Exception:
        return np.zeros(grid, dtype=bool)
    if record.shape != grid:
        return np.zeros(grid, dtype=bool)
    return np.asarray(record[...]) == 1


def prepare_output(spec: OutputSpec, mode: Mode) -> str:
    """Create (or, for ``replace``, recreate) the array and its record; for ``resume``, keep them.

    Runs as the first task of the write, so that a run refused while planning writes nothing.
    Idempotent within a run: if a lost worker makes Dask run it again, the array this run
    created (and the chunks already stored in it) is kept.
    """
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec

    if mode == "resume" or _created_by(spec.path, spec.attributes[RUN_ATTR]):
        return spec.path
    try:
        zarr.create_array(
            spec.path,
            shape=spec.shape,
            chunks=spec.chunks,
            dtype=spec.dtype,
            fill_value=0,
            compressors=(ZstdCodec(level=3), Crc32cCodec()),
            dimension_names=spec.dimension_names,
            attributes=dict(spec.attributes),
            config={"write_empty_chunks": True},
            overwrite=mode == "replace",
        )
        zarr.create_array(
            f"{spec.path}/{RECORD}",
            shape=spec.grid,
            chunks=(1,) * len(spec.grid),
            dtype="uint8",
            fill_value=0,
            compressors=None,
            config={"write_empty_chunks": True},
        )
    except OSError as exc:  # a full disk: nothing is published; a re-run creates it again
        raise ImageIOError(
            f"{output_name(spec.path)}: cannot create the output array at {spec.path} "
            f"({exc.strerror or exc}); run again once there is space"
        ) from None
    return spec.path


def _created_by(path: str, run: str) -> bool:
    """True if the array at ``path`` was created by run ``run``."""
    import zarr

    try:
        return zarr.open_array(path, mode="r").attrs.get(RUN_ATTR) == run
    except Exception:
        return False


def store_block(block: np.ndarray, prepared: str, region: Region, cells: Region) -> None:
    """Store one computed block (whole output chunks), then mark those chunks finished in the record.

    Returns nothing: an output counts as written once it is published, not per chunk.
    """
    import zarr

    try:
        array = zarr.open_array(prepared, mode="r+")
        array[region] = block.reshape(
            tuple(r.stop - r.start for r in region)
        )  # adds a dataset's image axis
        record = zarr.open_array(f"{prepared}/{RECORD}", mode="r+")
        record[cells] = 1
    except OSError as exc:  # a full disk: the chunk stays unfinished and is redone on resume
        span = ", ".join(f"{r.start}:{r.stop}" for r in region)
        raise ImageIOError(
            f"{output_name(prepared)}: cannot store the chunk at [{span}] "
            f"({exc.strerror or exc}); run again once there is space to resume"
        ) from None


def remove_orphans(path: str) -> None:
    """Delete temporary ``*.partial`` files that a killed run left in a local output (they are never chunks)."""
    if "://" in path:
        return
    for orphan in Path(path).rglob("*.partial"):
        orphan.unlink(missing_ok=True)
