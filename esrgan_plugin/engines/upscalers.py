"""Upscalers cached per process: each model file loaded once, each engine prepared once.

The ``esrgan`` command and the pipeline stages share this cache, so a Dask worker loads a model
once and reuses its engine for every block; the Dask graph carries only parameters. A model
pinned to a SHA-256 (``model_sha256``: what a planned job's tasks carry) is keyed by that hash
and its file checked against it when loaded, so a long-lived worker never runs other weights
than the job was planned with. Otherwise a model is keyed by its file's identity: path, size,
modification time, inode and change time (a file replaced in place, even with the same size
and modification time by ``cp -p`` or ``rsync -a``, has a new change time).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

import torch

from esrgan_plugin.cache import file_sha256, model_files
from esrgan_plugin.errors import CheckpointError, EsrganError
from esrgan_plugin.inference import Upscaler
from esrgan_plugin.interpolate import interpolate_models
from esrgan_plugin.models.loaded import LoadedModel
from esrgan_plugin.models.loading import load_model
from esrgan_plugin.models.names import resolve_model_path
from esrgan_plugin.options import UpscaleParams

TORCH_THREADS_ENV = "ESRGAN_TORCH_THREADS"
"""Environment variable that sets torch's intra-op threads for pipeline inference."""

CACHE_SIZE = 4
"""Models (and upscalers) kept per process."""

V = TypeVar("V")
FileKey = tuple[str, int, int, int, int]


class LRU:
    """A small thread-safe least-recently-used cache; values are built at most once per key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, object] = OrderedDict()
        self.lock = threading.RLock()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]  # type: ignore[return-value]
            value = build()
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_MODELS = LRU(CACHE_SIZE)
_UPSCALERS = LRU(CACHE_SIZE)
_HASHES = LRU(16)
_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_THREAD_ENVS = (TORCH_THREADS_ENV, "OMP_NUM_THREADS")


def file_key(name_or_path: str) -> FileKey:
    """The identity of a model's file(s): a changed or replaced file is a new key."""
    path = resolve_model_path(name_or_path).expanduser()
    try:
        stats = [p.stat() for p in model_files(path)]
    except OSError:
        return (str(path), -1, -1, -1, -1)  # load_model reports the missing file
    main = model_files(path)[0].resolve()
    return (
        str(main),
        sum(s.st_size for s in stats),
        max(s.st_mtime_ns for s in stats),
        max(s.st_ctime_ns for s in stats),
        hash(tuple(s.st_ino for s in stats)),
    )


def model_key(name_or_path: str, sha256: str | None = None) -> Hashable:
    """How a model is cached: by the SHA-256 it is pinned to, else by its file's identity."""
    return ("sha256", sha256) if sha256 else file_key(name_or_path)


def cached_model(name_or_path: str, sha256: str | None = None) -> LoadedModel:
    """The model for a file or name, loaded once per process and file version; with
    ``sha256``, the file must have that hash (a one-line error names both otherwise)."""

    def load() -> LoadedModel:
        if sha256:
            check_sha256(name_or_path, sha256)
        return load_model(name_or_path)

    return _MODELS.get(model_key(name_or_path, sha256), load)


def check_sha256(name_or_path: str, expected: str) -> None:
    """Refuse a model file whose bytes are not the ones the job was planned with."""
    path = resolve_model_path(name_or_path)
    actual = file_sha256(model_files(path))
    if actual != expected:
        raise CheckpointError(
            f"{path}: the model file changed since the job was planned (SHA-256 {actual[:16]}..., "
            f"expected {expected[:16]}...); plan the job again to use the new file"
        )


def model_sha256(name_or_path: str) -> str:
    """SHA-256 of a model's file (an ncnn model: of its .param and .bin together)."""
    key = file_key(name_or_path)
    return _HASHES.get(key, lambda: file_sha256(model_files(Path(key[0]))))


def params_model(params: UpscaleParams) -> LoadedModel:
    """The model the stage parameters name, interpolated with a second one when they ask."""
    model = cached_model(params.model, params.model_sha256)
    if params.interpolate_with is None:
        return model
    other = cached_model(params.interpolate_with, params.interpolate_with_sha256)
    key = ("interpolated", *_model_keys(params), params.alpha)
    return _MODELS.get(key, lambda: interpolate_models(model, other, float(params.alpha or 0.0)))


def _model_keys(params: UpscaleParams) -> tuple[Hashable, ...]:
    keys = [model_key(params.model, params.model_sha256)]
    if params.interpolate_with is not None:
        keys.append(model_key(params.interpolate_with, params.interpolate_with_sha256))
    return tuple(keys)


def pin_models(params: UpscaleParams) -> UpscaleParams:
    """``params`` with each model pinned to its file's SHA-256 (a given hash is checked)."""
    pinned = {"model_sha256": model_sha256(params.model)}
    if params.interpolate_with is not None:
        pinned["interpolate_with_sha256"] = model_sha256(params.interpolate_with)
    for field, actual in pinned.items():
        given = getattr(params, field)
        if given is not None and given != actual:
            name = params.model if field == "model_sha256" else params.interpolate_with
            raise CheckpointError(
                f"{name}: the model file's SHA-256 is {actual[:16]}..., not the {given[:16]}... "
                f"that {field} asks for"
            )
    return params.model_copy(update=pinned)


def upscaler_for(params: UpscaleParams) -> Upscaler:
    """The (cached) upscaler for these parameters: model, interpolation, device and options."""
    configure_torch_threads()
    options = params.options()
    key = (*_model_keys(params), params.alpha, options)
    return _UPSCALERS.get(key, lambda: Upscaler(params_model(params), options))


def device_lock(device: str) -> threading.Lock:
    """One inference at a time per device in this process; torch threads do the parallel work."""
    with _UPSCALERS.lock:
        return _DEVICE_LOCKS.setdefault(device, threading.Lock())


def configure_torch_threads() -> None:
    """Cap torch's threads at ``ESRGAN_TORCH_THREADS``, else ``OMP_NUM_THREADS``, when either is set.

    Read on every call: a Dask runner may set ``OMP_NUM_THREADS`` in a worker process that had
    already imported torch, which would otherwise keep using every core in each worker.
    """
    name = next((n for n in _THREAD_ENVS if os.environ.get(n, "").strip()), None)
    if name is None:
        return
    value = os.environ[name].strip()
    try:
        threads = max(1, int(value))
    except ValueError:
        raise EsrganError(f"{name}={value!r} is not a whole number") from None
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def clear_caches() -> None:
    """Forget every cached model and upscaler (tests, or to free memory)."""
    _MODELS.clear()
    _UPSCALERS.clear()
    _HASHES.clear()
