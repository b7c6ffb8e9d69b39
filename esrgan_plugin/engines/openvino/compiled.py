"""OpenVINO graphs compiled for the CPU, run on NumPy arrays: the part of the openvino engine
that needs no PyTorch, so the command's fast start can run cached graphs without importing it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esrgan_plugin.arch.padding import pad_bottom_right
from esrgan_plugin.arch.strips import map_row_strips, strip_rows
from esrgan_plugin.cache import cache_dir
from esrgan_plugin.errors import InferenceError


def require_openvino() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise InferenceError(
            "engine openvino needs the openvino package: pip install 'esrgan-pipelines[openvino]'"
        ) from None
    return ov


def new_core() -> Any:
    """An OpenVINO core that keeps compiled graphs in our cache folder: a later process compiles
    x4plus in about 1.3 s instead of 4.6 s (measured, bf16). Uncached when not writable."""
    core = require_openvino().Core()
    folder = cache_dir() / "openvino-compiled"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return core
    if os.access(folder, os.W_OK):
        core.set_property({"CACHE_DIR": str(folder)})
    return core


class CompiledGraph:
    """One exported graph, compiled by OpenVINO on first use, with dynamic batch, height and
    width; NCHW float32 arrays in and out.

    Measured on RealESRGAN_x4plus (bf16, 128x128, 2 threads): the dynamic graph runs as fast as
    one compiled for the exact shape (4.6 s against 4.9 s for the trunk on a loaded machine),
    while compiling per shape cost seconds for every new tile or image size.
    """

    def __init__(
        self, core: Any, model: Any, config: dict[str, str], source: Path | None = None
    ) -> None:
        self.core, self._model, self.config = core, model, config
        self.source = source
        """The graph's file in the cache (None when it lives in a temporary folder)."""
        self._request: Any = None

    @property
    def model(self) -> Any:
        """The OpenVINO model (read from :attr:`source` on first use when not given)."""
        if self._model is None:
            self._model = self.core.read_model(str(self.source))
        return self._model

    def __call__(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        """The output for input ``x`` (and the graph's further inputs, such as a column mask)."""
        if self._request is None:  # from the file when there is one: OpenVINO's compiled-graph
            target = str(self.source) if self.source is not None else self.model  # cache keys it
            compiled = self.core.compile_model(target, "CPU", self.config)
            self._request = compiled.create_infer_request()
        inputs = (x, *more)
        self._request.infer(
            {i: np.ascontiguousarray(a, dtype=np.float32) for i, a in enumerate(inputs)}
        )
        return np.array(self._request.get_output_tensor(0).data, copy=True)


@dataclass
class CompiledNetwork:
    """A network as OpenVINO runs it: the trunk, and for an RRDBNet the up-sampling tail run on
    row strips of the trunk's output (:mod:`esrgan_plugin.arch.strips`), so its high-resolution
    maps stay a strip tall as in the torch engine: the same memory per pixel, hence the same
    default tiles."""

    trunk: CompiledGraph
    tail: CompiledGraph | None
    multiple: int
    scale: int
    tail_scale: int = 0
    masked: tuple[CompiledGraph, CompiledGraph] | None = None
    """The trunk and tail taking a column mask
    (:class:`~esrgan_plugin.engines.openvino.graphs.ColumnMasked`), for inputs whose trunk
    width is not a multiple of :attr:`column_multiple`: those are zero-padded to one."""
    column_multiple: int = 16

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float input in [0, 1] -> the upscaled float32 output (padded to the multiple)."""
        height, width = batch.shape[-2:]
        padded = pad_bottom_right(
            np.asarray(batch, dtype=np.float32), -height % self.multiple, -width % self.multiple
        )
        trunk, tail = self.trunk, self.tail
        masks: tuple[np.ndarray, ...] = ()
        if self.masked is not None and (padded.shape[-1] // self.multiple) % self.column_multiple:
            trunk, tail = self.masked
            padded, mask = pad_columns(padded, self.multiple, self.column_multiple)
            masks = (mask,)
        out = trunk(padded, *masks)
        if tail is not None:
            run_tail = tail
            rows = strip_rows(out.shape[-1], out.shape[1], self.tail_scale)
            out = map_row_strips(
                lambda part: run_tail(part, *masks), out, self.tail_scale, rows, empty=_empty_like
            )
        return out[..., : height * self.scale, : width * self.scale]


def pad_columns(x: np.ndarray, factor: int, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (NCHW, width a multiple of the pixel-unshuffle ``factor``) zero-padded on the right
    to ``multiple`` trunk columns, and the column mask at the trunk's resolution (1 on ``x``'s
    columns, 0 on the padding)."""
    columns = x.shape[-1] // factor
    extra = -columns % multiple
    if extra:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra * factor)])
    mask = np.zeros((1, 1, 1, columns + extra), dtype=np.float32)
    mask[..., :columns] = 1.0
    return x, mask


def _empty_like(part: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape, dtype=part.dtype)
