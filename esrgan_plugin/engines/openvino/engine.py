"""The OpenVINO engine (CPU): the same network, compiled by Intel's inference runtime.

- fp32 and bf16: the PyTorch module is exported to ONNX once and compiled with OpenVINO's f32
  or bf16 inference precision.
- int8: the fake-quantised graph of :mod:`esrgan_plugin.engines.openvino.graphs` (our
  quantisation points and calibration), which OpenVINO's low-precision transformations run as
  int8 convolutions.

Exported graphs are cached (:mod:`esrgan_plugin.cache`, keyed by the weights, precision,
calibration and OpenVINO version) and compiled once, for any input shape (OpenVINO keeps the compiled graphs in the same cache). OpenVINO is an optional
extra (``pip install -e '.[openvino]'``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from esrgan_plugin.arch.registry import model_needs
from esrgan_plugin.arch.rrdbnet import RRDBNet, pad_to_multiple
from esrgan_plugin.arch.strips import map_row_strips, strip_rows
from esrgan_plugin.cache import GRAPHS, cache_dir, entry_path, store, weights_sha256
from esrgan_plugin.device import cpu_has_native_bf16
from esrgan_plugin.engines.base import EngineRequest, Network
from esrgan_plugin.engines.calibration import calibration_for
from esrgan_plugin.engines.onednn.int8 import default_int8_options
from esrgan_plugin.engines.openvino.graphs import FakeQuantRRDBNet, Part
from esrgan_plugin.errors import InferenceError

log = logging.getLogger(__name__)

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}
"""OpenVINO inference precision per ``--precision``; for int8 the precision of what is not
quantised: bf16 where the CPU computes it natively (measured on RealESRGAN_x4plus: 0.117 s at
46.6 dB against 0.147 s at 47.6 dB with f32 around the int8 convs), else f32."""

ONNX_OPSET = 17
"""Opset of the exported graph (13+ for per-channel QuantizeLinear)."""


def openvino_available() -> bool:
    """True when the ``openvino`` package imports."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def require_openvino() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise InferenceError(
            "engine openvino needs the openvino package: pip install 'esrgan-pipelines[openvino]'"
        ) from None
    return ov


class CompiledGraph:
    """One exported graph, compiled by OpenVINO once, with dynamic batch, height and width.

    Measured on RealESRGAN_x4plus (bf16, 128x128, 2 threads): the dynamic graph runs as fast as
    one compiled for the exact shape (4.6 s against 4.9 s for the trunk on a loaded machine),
    while compiling per shape cost seconds for every new tile or image size.
    """

    def __init__(self, core: Any, model: Any, config: dict[str, str]) -> None:
        self.core, self.model, self.config = core, model, config
        self._request: Any = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._request is None:
            self._request = self.core.compile_model(
                self.model, "CPU", self.config
            ).create_infer_request()
        self._request.infer({0: x.float().contiguous().numpy()})
        return torch.from_numpy(np.array(self._request.get_output_tensor(0).data, copy=True))


class OpenVinoEngine:
    """A model compiled by OpenVINO for the CPU; call it like the module (NCHW float32 in/out).

    An RRDBNet is compiled as two graphs, the trunk and the up-sampling tail, and the tail is
    run on row strips of the trunk's output (:mod:`esrgan_plugin.arch.strips`), so its
    high-resolution maps stay a strip tall as in the torch engine: the same memory per pixel,
    hence the same default tiles.
    """

    def __init__(
        self,
        module: nn.Module,
        precision: str,
        threads: int,
        calibration: str | None = None,
        quantize_tail: bool = True,
    ) -> None:
        if precision not in PRECISION_HINTS:
            raise InferenceError(
                f"engine openvino runs precision fp32, bf16 or int8 on the CPU, not {precision}"
            )
        self.ov = require_openvino()
        needs = model_needs(module)
        self.multiple, self.scale, self.in_channels = (
            needs.multiple_of,
            needs.scale,
            needs.in_channels,
        )
        self.precision, self.threads = precision, threads
        self._core = self.ov.Core()
        self._cache_compiled()
        config = {
            "INFERENCE_NUM_THREADS": str(threads),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": self._hint(),
        }
        self.tail_scale = 0
        self.trunk: CompiledGraph
        self.tail: CompiledGraph | None = None
        if not isinstance(module, RRDBNet):
            if precision == "int8":
                raise InferenceError(
                    f"precision int8 needs an RRDBNet (ESRGAN) model; got {type(module).__name__}"
                )
            key = _weights_key(module, precision, "", self.ov.__version__)
            self.trunk = CompiledGraph(self._core, self._converted(module, key, "model", 0), config)
            return
        graph: nn.Module = module.eval()
        extra = ""
        if precision == "int8":
            ranges = calibration_for(module, calibration)
            keep_last = default_int8_options().keep_last
            graph = FakeQuantRRDBNet(module, ranges, keep_last, quantize_tail)
            extra = ranges.to_json() + f"keep_last={keep_last},tail={quantize_tail}"
        key = _weights_key(module, precision, extra, self.ov.__version__)
        features = module.config.num_features
        self.tail_scale = 2**module.config.num_upsample
        trunk, tail = Part(graph, "trunk"), Part(graph, "tail")
        self.trunk = CompiledGraph(self._core, self._converted(trunk, key, "trunk", 0), config)
        self.tail = CompiledGraph(self._core, self._converted(tail, key, "tail", features), config)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """NCHW float input in [0, 1] -> upscaled float32 output (padded to the model's multiple)."""
        height, width = batch.shape[-2:]
        out = self.trunk(pad_to_multiple(batch.float(), self.multiple))
        if self.tail is not None:
            rows = strip_rows(out.shape[-1], out.shape[1], self.tail_scale)
            out = map_row_strips(self.tail, out, self.tail_scale, rows)
        return out[..., : height * self.scale, : width * self.scale]

    def _cache_compiled(self) -> None:
        """Let OpenVINO keep its compiled graphs in our cache folder: a later process compiles
        x4plus in about 1.3 s instead of 4.6 s (measured, bf16). Uncached when not writable."""
        folder = cache_dir() / "openvino-compiled"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return
        if os.access(folder, os.W_OK):
            self._core.set_property({"CACHE_DIR": str(folder)})

    def _hint(self) -> str:
        hint = PRECISION_HINTS[self.precision]
        if self.precision == "int8" and not cpu_has_native_bf16():
            return "f32"
        return hint

    def _converted(self, module: nn.Module, key: str, part: str, channels: int) -> Any:
        """The OpenVINO model of ``module``: its ONNX graph from the cache, else exported (and
        cached). OpenVINO's runtime reads ONNX itself; its Python converter is not used (it
        sends usage telemetry by default)."""
        path = entry_path(GRAPHS, GRAPHS.key(key, part), f"{self.precision}-{part}")
        if path.is_file():
            try:
                return self._core.read_model(str(path))
            except RuntimeError as exc:
                log.warning("OpenVINO cache entry %s unreadable (%s); exporting again", path, exc)
        log.info("exporting the model for OpenVINO (%s); cached in %s", self.precision, path)
        if store(path, lambda tmp: self._export(module, tmp, channels)):
            return self._core.read_model(str(path))
        with tempfile.TemporaryDirectory() as scratch:  # an unwritable cache: export each time
            target = Path(scratch) / "model.onnx"
            self._export(module, target, channels)
            return self._core.read_model(str(target))

    def _export(self, module: nn.Module, target: Path, channels: int) -> None:
        """ONNX with dynamic N, H and W, by the TorchScript exporter (seconds, where the
        torch.export-based one takes minutes on the full model). ``channels``: the graph's
        input channels when it is not the image (the tail's features)."""
        side = 4 * self.multiple * 8
        example = torch.rand(1, channels or self.in_channels, side, side)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (example,),
                str(target),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={
                    "input": {0: "n", 2: "h", 3: "w"},
                    "output": {0: "n", 2: "H", 3: "W"},
                },
            )


def _weights_key(module: nn.Module, precision: str, extra: str, ov_version: str) -> str:
    """The cache key of a graph: the weights, precision, quantisation settings and OpenVINO."""
    return GRAPHS.key(weights_sha256(module), precision, extra, f"openvino={ov_version}")


def prepare(request: EngineRequest) -> Network:
    """The network compiled by OpenVINO for this precision (int8: our calibration)."""
    return OpenVinoEngine(
        request.module, request.precision, torch.get_num_threads(), request.calibration
    )
