"""What the napari widget runs, without Qt: upscaling a layer's data, lazily or in memory.

- **In-memory layers** (NumPy or small arrays): an RGB(A) layer goes through the model's colour
  path; any other layer (grey, multi-channel, a stack) has every 2-D plane upscaled through the
  grey path, as ``esrgan upscale`` treats a grey image. uint8 and uint16 data keep their range;
  other dtypes are mapped to [0, 1] through the layer's contrast limits (what the user sees;
  values outside clip) and back, so the result is in the layer's units, float32.
- **Multiscale layers** (OME-Zarr): level 0 is processed lazily through Dask with the
  ``esrgan.upscale`` stage (:func:`pipelines.api.map_stage`: blocks with the stage's halo, no
  seams), plane by plane, and computed in the worker thread with progress per Dask task.
- **Writing OME-Zarr**: the layer's source image goes through the project's own pipeline
  (``builtin.read`` level 0 -> ``esrgan.upscale`` -> ``builtin.write``: resumable, pyramid,
  provenance, visible only when complete), run as ``pipelines run`` in a child process whose
  progress line is followed; cancelling interrupts it (finished chunks are kept, a re-run
  resumes). The result is opened lazily, level by level.

Every long step calls ``report(fraction)``, which raises :class:`Cancelled` when the user asked
to stop, so the work ends at the next tile, Dask task or progress line.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esrgan_plugin.errors import EsrganError

Report = Callable[[float], None]
"""Called with the fraction done (0..1); raises :class:`Cancelled` to stop the work."""

NATIVE_DTYPES = (np.uint8, np.uint16)


class Cancelled(EsrganError):
    """The user cancelled the run."""


@dataclass(frozen=True)
class Settings:
    """The widget's choices, as ``esrgan.upscale`` parameters."""

    model: str
    tile: int | None = None
    precision: str = "auto"
    engine: str = "auto"

    def params(self) -> dict[str, Any]:
        values: dict[str, Any] = {"model": self.model, "precision": self.precision}
        values["engine"] = self.engine
        if self.tile is not None:
            values["tile"] = self.tile
        return values


def upscaled_geometry(
    scale: Sequence[float],
    translate: Sequence[float],
    factor: float,
    linear: Any = None,
    spatial: int = 2,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Scale and translate of the upscaled layer, so that it overlays the original exactly.

    napari places pixel ``i`` of an axis at ``translate + linear @ (i * scale)`` (its centre;
    ``linear`` is the layer's rotation and shear, identity by default). Output pixel ``j`` of an
    ``s``-times upscaled axis is input pixel ``j / s + (1 / s - 1) / 2``: the upscaled grid is
    offset by ``(1/s - 1)/2`` of an input pixel, so that the pixel edges coincide. Its scale is
    ``scale / s`` and its translate moves by ``linear @ (scale * (1/s - 1) / 2)``. Only the last
    ``spatial`` axes (y, x) change.
    """
    scale_in = np.asarray(scale, dtype=float)
    first = len(scale_in) - spatial
    new_scale = scale_in.copy()
    new_scale[first:] /= factor
    offset = np.zeros_like(scale_in)
    offset[first:] = scale_in[first:] * (1.0 / factor - 1.0) / 2.0
    matrix = np.eye(len(scale_in)) if linear is None else np.asarray(linear, dtype=float)
    new_translate = np.asarray(translate, dtype=float) + matrix @ offset
    return tuple(float(v) for v in new_scale), tuple(float(v) for v in new_translate)


def upscale_spec() -> Any:
    """The ``esrgan.upscale`` stage specification (what the pipeline runner and map_stage use)."""
    from esrgan_plugin.stages import stage_specs

    return next(spec for spec in stage_specs() if spec.id == "esrgan.upscale")


def window(dtype: np.dtype, contrast_limits: Sequence[float]) -> tuple[float, float] | None:
    """The [low, high] mapped to [0, 1] for ``dtype``: None for uint8/uint16 (their own range)."""
    if np.dtype(dtype).type in NATIVE_DTYPES:
        return None
    low, high = float(contrast_limits[0]), float(contrast_limits[1])
    if not high > low:
        raise EsrganError(f"contrast limits {low:g}..{high:g}: expected a range to map to [0, 1]")
    return low, high


def to_unit(plane: Any, limits: tuple[float, float] | None) -> Any:
    """A plane as the model sees it: as is for uint8/uint16, else windowed to float32 [0, 1]."""
    if limits is None:
        return plane
    low, high = limits
    return ((plane.astype(np.float32) - low) / np.float32(high - low)).clip(0, 1)


def from_unit(plane: Any, limits: tuple[float, float] | None) -> Any:
    """Back to the layer's units (float32) after :func:`to_unit`."""
    if limits is None:
        return plane
    low, high = limits
    return plane.astype(np.float32) * np.float32(high - low) + np.float32(low)


def planes_of(shape: Sequence[int], rgb: bool) -> list[tuple[int, ...]]:
    """Indices of the 2-D planes (or RGB images) of a layer's data, in order."""
    leading = tuple(shape[:-3] if rgb else shape[:-2])
    return list(np.ndindex(*leading)) if leading else [()]


def upscale_in_memory(
    data: Any, rgb: bool, contrast_limits: Sequence[float], settings: Settings, report: Report
) -> np.ndarray:
    """Upscale every plane of an in-memory layer with the cached upscaler (tile progress)."""
    from esrgan_plugin.engines.upscalers import device_lock, upscaler_for
    from esrgan_plugin.options import UpscaleParams

    upscaler = upscaler_for(UpscaleParams(**settings.params()))  # checked by the widget
    limits = window(np.dtype(data.dtype), contrast_limits)
    planes = planes_of(np.shape(data), rgb)
    outputs: list[np.ndarray] = []
    report(0.0)
    for number, index in enumerate(planes):

        def tiles(done: int, total: int, number: int = number) -> None:
            report((number + done / max(total, 1)) / len(planes))

        plane = to_unit(np.asarray(data[index]), limits)
        with device_lock(str(upscaler.device)):
            outputs.append(from_unit(upscaler.upscale(plane, tiles), limits))
        report((number + 1) / len(planes))
    if planes == [()]:
        return outputs[0]
    out = np.stack(outputs)
    return out.reshape(*np.shape(data)[: len(planes[0])], *out.shape[1:])


def upscale_lazily(
    level0: Any, rgb: bool, contrast_limits: Sequence[float], settings: Settings, report: Report
) -> np.ndarray:
    """Level 0 of a multiscale layer through Dask: ``map_stage`` per plane, computed here."""
    import dask.array as da
    from dask.callbacks import Callback

    from pipelines.api import map_stage

    array = level0 if isinstance(level0, da.Array) else da.from_array(level0, chunks="auto")
    limits = window(array.dtype, contrast_limits)
    spec = upscale_spec()
    params = settings.params()
    lazy = [
        from_unit(map_stage(to_unit(array[index], limits), spec, params), limits)
        for index in planes_of(array.shape, rgb)
    ]
    result = (
        lazy[0]
        if len(lazy) == 1
        else da.stack(lazy).reshape(*array.shape[: array.ndim - (3 if rgb else 2)], *lazy[0].shape)
    )

    class Progress(Callback):  # type: ignore[misc]  # dask's callbacks are untyped
        total = 1
        done = 0

        def _start(self, dsk: Any) -> None:
            self.total = max(1, len(dsk))

        def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
            report(self.done / self.total)  # raises Cancelled: the scheduler stops

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker: Any) -> None:
            self.done += 1
            report(self.done / self.total)

    report(0.0)
    with Progress():
        computed = result.compute(scheduler="threads")
    return np.asarray(computed)


_PROGRESS = re.compile(r"(\d+)/(\d+) ")
"""The runner's progress line: ``[####    ] 37/256 outputs | ...``."""

POLL_SECONDS = 0.2
"""How often a silent child process is checked for cancellation."""


def pipeline_yaml(source: str, output: str, settings: Settings) -> str:
    """The pipeline that upscales an OME-Zarr image's level 0 into an OME-Zarr pyramid."""
    import yaml

    document = {
        "pipeline": "napari-esrgan-upscale",
        "executor": "threads",
        "steps": [
            {"id": "src", "uses": "builtin.read", "with": {"path": source, "level": 0}},
            {"id": "sr", "uses": "esrgan.upscale", "with": settings.params()},
            {"id": "out", "uses": "builtin.write", "with": {"path": output}},
        ],
    }
    return str(yaml.safe_dump(document, sort_keys=False))


def write_ome_zarr(source: str, output: str, settings: Settings, report: Report) -> Path:
    """Run the pipeline in a child ``pipelines run`` process, following its progress line.

    Cancelling sends it SIGINT: it stops like an interrupted ``pipelines run`` (finished chunks
    kept; running the same job again resumes). A failure is its last error line.
    """
    with tempfile.TemporaryDirectory(prefix="esrgan-napari-") as folder:
        recipe = Path(folder) / "pipeline.yaml"
        recipe.write_text(pipeline_yaml(source, output, settings))
        command = [sys.executable, "-c", "from pipelines.cli import main; raise SystemExit(main())"]
        command += ["run", str(recipe)]
        child = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stderr is not None
        chunks: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=_pump, args=(child.stderr, chunks), daemon=True).start()
        lines: list[str] = []
        buffer = b""
        fraction = 0.0
        try:
            while True:
                report(fraction)  # also while the child is silent (start-up): cancel is prompt
                try:
                    chunk = chunks.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if not chunk:
                    break
                *parts, buffer = re.split(rb"[\r\n]", buffer + chunk)
                for part in parts:
                    text = part.decode(errors="replace").strip()
                    if text:
                        lines.append(text)
                    found = _PROGRESS.search(text)
                    if found and int(found.group(2)):
                        fraction = int(found.group(1)) / int(found.group(2))
        except Cancelled:
            child.send_signal(signal.SIGINT)
            child.wait()
            raise
        finally:
            if child.poll() is None:
                child.wait()
        if child.returncode != 0:
            errors = [line for line in lines if "error" in line.lower()] or lines or ["no output"]
            raise EsrganError(f"{output}: the pipeline failed: {errors[-1]}")
    return Path(output)


def _pump(stream: Any, chunks: queue.Queue[bytes]) -> None:
    """Copy a child's stream into ``chunks`` as it comes; an empty chunk marks its end."""
    while chunk := stream.read1(4096):
        chunks.put(chunk)
    chunks.put(b"")


def open_ome_levels(path: str | os.PathLike[str]) -> list[Any]:
    """The levels of an OME-Zarr image as lazy Dask arrays (level 0 first)."""
    import dask.array as da
    import zarr

    group = zarr.open_group(str(path), mode="r")
    attrs: dict[str, Any] = dict(group.attrs)
    multiscales: Any = (attrs.get("ome") or attrs).get("multiscales")
    if not multiscales:
        raise EsrganError(f"{path}: not an OME-Zarr image (no multiscales metadata)")
    return [da.from_zarr(group[d["path"]]) for d in multiscales[0]["datasets"]]
