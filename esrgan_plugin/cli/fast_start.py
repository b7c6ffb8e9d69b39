"""The command's fast start: a model already run on the openvino engine runs again without PyTorch.

``esrgan upscale`` spends about 3 s of a CPU run importing torch, which the openvino engine only
needs to export its graphs, measure halos and choose a precision. After a run on that engine the
command records what those steps resolved (the cached graphs, the model's size needs, halo,
precision, threads and the provenance record) under a key of everything they depend on: the
parameters as given, the model file's path and SHA-256, this machine (CPU, cores, memory, thread
variables) and the versions of OpenVINO, torch and this package. A later command with the same
key runs the graphs straight from the cache on NumPy arrays, through the same tiles, padding and
row strips (:class:`~esrgan_plugin.tiled_upscaler.TiledUpscaler`): the same output bytes, tested.

Anything else runs the usual way: videos, uncertainty maps, ``tta``, interpolation, int8 with
a calibration folder, another device or engine, a machine where a GPU may be present, a changed file or setting, a record whose
graphs left the cache, or ``ESRGAN_FAST_START=0``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from esrgan_plugin.arch.needs import ModelNeeds
from esrgan_plugin.arch.padding import padded_network
from esrgan_plugin.cache import GRAPHS, Kind, entry_path, store
from esrgan_plugin.device import DeviceType, bf16_without_hardware_note, cpu_info
from esrgan_plugin.models.files import file_sha256, model_files
from esrgan_plugin.models.names import resolve_model_path
from esrgan_plugin.options import UpscaleOptions, UpscaleParams
from esrgan_plugin.runtime import reuse_freed_memory
from esrgan_plugin.tiled_upscaler import TiledUpscaler
from esrgan_plugin.tiles.defaults import total_memory_bytes

log = logging.getLogger(__name__)

RECORDS = Kind("fast-start", ".json", "fast-start/1")
"""What an openvino run resolved, keyed by :func:`record_key`."""

HASHES = Kind("file-hashes", ".json", "sha256-by-stat/1")
"""Model files' SHA-256 under their paths and stat signatures (size, modification and change
times, inode), as git's index keeps them: hashing RealESRGAN_x4plus's 67 MB took 0.3 s of every
fast start."""

SETTLED_SECONDS = 2.0
"""A file modified this recently may still be changing: its hash is computed, not remembered."""

FAST_START_ENV = "ESRGAN_FAST_START"
"""Set to 0 to always take the usual path (benchmarks comparing the two)."""

_KEY_ENVS = ("ESRGAN_TORCH_THREADS", "OMP_NUM_THREADS", "ESRGAN_REUSE_MEMORY")
"""Environment variables that change what a run resolves (its threads, its allocator)."""

CPU = DeviceType("cpu")


@dataclass(frozen=True)
class FastStartRecord:
    """What an openvino run resolved: enough to run its graphs again without torch."""

    trunk: str
    tail: str | None
    tail_scale: int
    masked: list[str] | None
    column_multiple: int
    config: dict[str, str]
    needs: dict[str, Any]
    architecture: str
    precision: str
    halo: int
    batch_size: int
    step: dict[str, Any]

    def graphs_present(self) -> bool:
        paths = [self.trunk, self.tail, *(self.masked or [])]
        return all(Path(p).is_file() for p in paths if p is not None)


def fast_start_enabled() -> bool:
    return os.environ.get(FAST_START_ENV, "1").strip() != "0"


def may_use_fast_start(params: UpscaleParams) -> bool:
    """Whether these parameters could run without torch at all (the record decides the rest)."""
    if not fast_start_enabled() or params.tta or params.interpolate_with is not None:
        return False
    if params.calibration is not None:  # its images may change under the same name
        return False
    if params.engine not in ("auto", "openvino"):
        return False
    if params.device == "cpu":
        return True
    return params.device == "auto" and not _accelerator_may_exist()


def _accelerator_may_exist() -> bool:
    """True where ``device: auto`` might pick a GPU (an NVIDIA or ROCm driver, or macOS), which
    only torch can tell."""
    if sys.platform == "darwin":
        return True
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/kfd").exists()


def record_key(params: UpscaleParams) -> str:
    """Everything a run's resolution depends on (a changed one is a new key)."""
    model = resolve_model_path(params.model).expanduser()
    info = cpu_info()
    machine = {
        "cpu": info.model,
        "flags": sorted(info.flags),
        "cores": info.cores,
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0,
        "memory": total_memory_bytes(CPU),
        "env": {name: os.environ.get(name, "") for name in _KEY_ENVS},
    }
    versions = {name: _version(name) for name in ("openvino", "torch", "esrgan-pipelines")}
    versions["graphs"] = GRAPHS.version  # the records name graphs of this exporter's making
    return RECORDS.key(
        json.dumps(params.model_dump(mode="json"), sort_keys=True),
        str(model.resolve()),
        model_sha256(model_files(model)),
        json.dumps(machine, sort_keys=True),
        json.dumps(versions, sort_keys=True),
    )


def model_sha256(paths: list[Path]) -> str:
    """SHA-256 of a model's files, remembered under their stat signature (a file rewritten in
    place gets a new change time, so a remembered hash never outlives the bytes it describes)."""
    stats = [path.stat() for path in paths]
    signature = [
        [str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        for path, st in zip(paths, stats, strict=True)
    ]
    entry = entry_path(HASHES, HASHES.key(json.dumps(signature)))
    try:
        remembered = json.loads(entry.read_text())["sha256"]
        if isinstance(remembered, str) and len(remembered) == 64:
            return remembered
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = file_sha256(paths)
    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in stats) / 1e9
    if time.time() - newest > SETTLED_SECONDS:
        store(entry, lambda tmp: tmp.write_text(json.dumps({"sha256": digest})))
    return digest


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "none"


def remember(params: UpscaleParams, upscaler: Any, step: dict[str, Any]) -> None:
    """Record what ``upscaler`` (an :class:`~esrgan_plugin.inference.Upscaler` on the openvino
    engine, made from ``params``) resolved, when its graphs live in the cache."""
    network = getattr(upscaler.prepared, "network", None)
    if upscaler.engine.name != "openvino" or network is None or not may_use_fast_start(params):
        return
    tail = network.tail
    graphs = [network.trunk, *([] if tail is None else [tail]), *(network.masked or ())]
    if any(graph.source is None for graph in graphs):
        return  # an unwritable cache: the graphs went with their temporary folder
    record = FastStartRecord(
        trunk=str(network.trunk.source),
        tail=None if tail is None else str(tail.source),
        tail_scale=network.tail_scale,
        masked=None if network.masked is None else [str(g.source) for g in network.masked],
        column_multiple=network.column_multiple,
        config=dict(network.trunk.config),
        needs=asdict(upscaler.needs),
        architecture=upscaler.architecture_name,
        precision=upscaler.precision,
        halo=upscaler.halo,
        batch_size=upscaler.batch_size,
        step=step,
    )
    path = entry_path(RECORDS, record_key(params), Path(params.model).stem)
    store(path, lambda tmp: tmp.write_text(json.dumps(asdict(record), indent=1)))


def fast_upscaler(params: UpscaleParams) -> tuple[FastUpscaler, dict[str, Any]] | None:
    """An upscaler that needs no torch and the run's provenance step, when a record matches."""
    if not may_use_fast_start(params):
        return None
    try:
        import openvino  # noqa: F401
    except ImportError:
        return None
    path = entry_path(RECORDS, record_key(params), Path(params.model).stem)
    if not path.is_file():
        return None
    try:
        record = FastStartRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:  # rewritten by the usual path's run
        log.info("fast start: record %s unreadable (%s); taking the usual path", path, exc)
        return None
    if not record.graphs_present():
        return None
    log.info("fast start: running the cached OpenVINO graphs of %s without torch", params.model)
    return FastUpscaler(record, params.options()), record.step


class FastUpscaler(TiledUpscaler):
    """The graphs of a :class:`FastStartRecord`, run on NumPy arrays on the CPU."""

    def __init__(self, record: FastStartRecord, options: UpscaleOptions) -> None:
        from esrgan_plugin.engines.openvino.compiled import (
            CompiledGraph,
            CompiledNetwork,
            new_core,
        )

        self.options = options
        self.needs = ModelNeeds(**record.needs)
        self.device = CPU
        self.precision = record.precision
        if record.precision == "bf16":  # as the usual path warns
            from esrgan_plugin.engines.registry import OPENVINO_BF16_WITHOUT_HARDWARE

            note = bf16_without_hardware_note("openvino", OPENVINO_BF16_WITHOUT_HARDWARE)
            if note is not None:
                log.warning(note)
        self.architecture_name = record.architecture
        self.batch_size = record.batch_size
        self.record = record
        core = new_core()
        trunk = CompiledGraph(core, None, record.config, Path(record.trunk))
        tail = None
        if record.tail is not None:
            tail = CompiledGraph(core, None, record.config, Path(record.tail))
        masked = None
        if record.masked is not None:
            masked_trunk, masked_tail = (
                CompiledGraph(core, None, record.config, Path(path)) for path in record.masked
            )
            masked = (masked_trunk, masked_tail)
        network = CompiledNetwork(
            trunk,
            tail,
            self.needs.multiple_of,
            self.needs.scale,
            record.tail_scale,
            masked,
            record.column_multiple,
        )
        self._network = padded_network(network, self.needs)
        reuse_freed_memory()  # as the usual CPU upscaler: activations stay mapped across tiles

    @property
    def halo(self) -> int:
        return self.options.halo if self.options.halo is not None else self.record.halo

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self._network(batch)

    def _to_batch(self, pixels: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))[None]

    def _to_pixels(self, out: Any) -> np.ndarray:
        return np.ascontiguousarray(np.clip(out[0], 0.0, 1.0).transpose(1, 2, 0))
