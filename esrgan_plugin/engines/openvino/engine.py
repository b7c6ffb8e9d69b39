"""The OpenVINO engine (CPU): the same network, compiled by Intel's inference runtime.

- fp32 and bf16: the PyTorch module is exported to ONNX once and compiled with OpenVINO's f32
  or bf16 inference precision.
- int8: the fake-quantised graph of :mod:`esrgan_plugin.engines.openvino.graphs` (our
  quantisation points and calibration, its biases corrected on the calibration crops:
  :mod:`esrgan_plugin.engines.openvino.bias_correction`), which OpenVINO's low-precision
  transformations run as int8 convolutions.

Exported graphs are cached (:mod:`esrgan_plugin.cache`, keyed by the weights, precision,
calibration and OpenVINO version) and compiled once, for any input shape (OpenVINO keeps the compiled graphs in the same cache). OpenVINO is an optional
extra (``pip install -e '.[openvino]'``).
"""

from __future__ import annotations

import functools
import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from esrgan_plugin.arch.registry import model_needs
from esrgan_plugin.arch.rrdbnet import RRDBNet
from esrgan_plugin.cache import GRAPHS, entry_path, store, weights_sha256
from esrgan_plugin.device import cpu_has_native_bf16, cpu_info
from esrgan_plugin.engines.base import EngineRequest, Network
from esrgan_plugin.engines.calibration import calibration_for, calibration_inputs
from esrgan_plugin.engines.openvino.bias_correction import BIAS_CORRECTION, correct_biases
from esrgan_plugin.engines.openvino.compiled import (
    CompiledGraph,
    CompiledNetwork,
    new_core,
    require_openvino,
)
from esrgan_plugin.engines.openvino.graphs import (
    MAX_FEATURE_STRETCH,
    MAX_INPUT_GAIN,
    ColumnMasked,
    FakeQuantRRDBNet,
    Part,
    summed_rrdbnet,
)
from esrgan_plugin.errors import InferenceError

log = logging.getLogger(__name__)

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}
"""OpenVINO inference precision per ``--precision``; for int8 the precision of what is not
quantised: bf16 where the CPU computes it natively (measured on RealESRGAN_x4plus: 0.117 s at
46.6 dB against 0.147 s at 47.6 dB with f32 around the int8 convs), else f32."""

ONNX_OPSET = 17
"""Opset of the exported graph (13+ for per-channel QuantizeLinear)."""

INT8_KEEP_LAST = 9
"""Dense blocks at the end of the trunk the int8 graph keeps in float (the last three RRDBs; a
model with fewer blocks keeps all but its first). Measured on RealESRGAN_x4plus against the
fp32 module on the whole 451x300 cat photo (scikit-image's chelsea), with the time at 192x192
(2026-12-03): our oneDNN engine's points (the last RRDB float, the tail quantised) 39.31 dB;
the tail in float 39.79 dB at 1.07x the time; 6 blocks 39.68 dB (1.0x), 6 and a float tail
40.23 dB (1.05x), 9 and a float tail 40.50 dB (1.08x), 12 and a float tail 40.60 dB (1.09x)."""

INT8_QUANTIZE_TAIL = False
"""Whether the int8 graph quantises the up-sampling convs and ``conv_hr`` (see above: 0.5 dB
on the cat photo for 5-7% of the time)."""

MASKED_PRECISIONS = ("bf16", "int8")
"""Precisions whose RRDBNet graphs come in a second, column-masked form for widths OpenVINO's
AMX kernels run slowly (:mod:`esrgan_plugin.engines.openvino.graphs`); fp32 runs alike at
every width."""

AMX_COLUMN_MULTIPLE = 16
"""On AMX CPUs, a trunk width that is not a multiple of this runs the masked graphs, zero-padded
to one. Measured on RealESRGAN_x4plus, bf16, height 64 (time per column against width 448):
449 3.6x, 455 3.2x, 451 1.25x unpadded; 1.08-1.13x padded (``bench/bench_widths.py``). The
masks cost 3-6% where no padding is needed, so those widths keep the plain graphs."""


def column_multiple(precision: str) -> int:
    """The trunk-width multiple the masked graphs pad to for this precision on this CPU; 0
    where no masked graphs are made (fp32, or no AMX)."""
    if precision not in MASKED_PRECISIONS or not cpu_info().relevant_flags["amx"]:
        return 0
    return AMX_COLUMN_MULTIPLE


def openvino_available() -> bool:
    """True when the ``openvino`` package imports."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoEngine:
    """A model compiled by OpenVINO for the CPU; call it like the module (NCHW float32 in/out).

    An RRDBNet is exported with dense blocks that need no concatenation
    (:mod:`esrgan_plugin.engines.openvino.graphs`) and compiled as two graphs, the trunk and the
    up-sampling tail
    (:class:`~esrgan_plugin.engines.openvino.compiled.CompiledNetwork` runs them on arrays).
    """

    def __init__(
        self,
        module: nn.Module,
        precision: str,
        threads: int,
        calibration: str | None = None,
        quantize_tail: bool | None = None,
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
        self._core = new_core()
        self.config = {
            "INFERENCE_NUM_THREADS": str(threads),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": self._hint(),
        }
        if not isinstance(module, RRDBNet):
            if precision == "int8":
                raise InferenceError(
                    f"precision int8 needs an RRDBNet (ESRGAN) model; got {type(module).__name__}"
                )
            key = _weights_key(module, precision, "", self.ov.__version__)
            trunk = self._compiled(lambda: module, key, "model", 0)
            self.network = CompiledNetwork(trunk, None, self.multiple, self.scale)
            return
        graph: Callable[[], nn.Module]  # built only to export: a cached graph needs no copy
        extra = ""
        if precision == "int8":
            ranges = calibration_for(module, calibration, with_lr_crops=True)
            keep_last = min(INT8_KEEP_LAST, 3 * module.config.num_blocks - 1)
            fq_tail = INT8_QUANTIZE_TAIL if quantize_tail is None else quantize_tail

            def corrected() -> FakeQuantRRDBNet:
                fake = FakeQuantRRDBNet(module, ranges, keep_last, fq_tail)
                log.info("correcting the int8 graph's biases (once per model and calibration)")
                correct_biases(fake, calibration_inputs(module, calibration, with_lr_crops=True))
                return fake

            graph = functools.cache(corrected)
            extra = ranges.to_json() + f"keep_last={keep_last},tail={fq_tail}"
            extra += f",stretch<={MAX_FEATURE_STRETCH},gain<={MAX_INPUT_GAIN}"  # in the weights
            extra += f",bias_correction={BIAS_CORRECTION}"  # on the crops the ranges come from
        else:
            graph = functools.cache(lambda: summed_rrdbnet(module))
        key = _weights_key(module, precision, extra, self.ov.__version__)
        features = module.config.num_features
        trunk = self._compiled(lambda: Part(graph(), "trunk"), key, "trunk", 0)
        tail = self._compiled(lambda: Part(graph(), "tail"), key, "tail", features)
        columns = column_multiple(precision)
        masked = None
        if columns:
            masked_graph = functools.cache(lambda: ColumnMasked(graph()))
            masked = (
                self._compiled(lambda: Part(masked_graph(), "trunk"), key, "trunk", 0, True),
                self._compiled(lambda: Part(masked_graph(), "tail"), key, "tail", features, True),
            )
        self.network = CompiledNetwork(
            trunk,
            tail,
            self.multiple,
            self.scale,
            2**module.config.num_upsample,
            masked,
            columns or AMX_COLUMN_MULTIPLE,
        )

    @property
    def tail(self) -> CompiledGraph | None:
        return self.network.tail

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """NCHW float input in [0, 1] -> upscaled float32 output (padded to the model's multiple)."""
        return torch.from_numpy(self.network(batch.detach().float().cpu().numpy()))

    def _hint(self) -> str:
        hint = PRECISION_HINTS[self.precision]
        if self.precision == "int8" and not cpu_has_native_bf16():
            return "f32"
        return hint

    def _compiled(
        self,
        graph: Callable[[], nn.Module],
        key: str,
        part: str,
        channels: int,
        masked: bool = False,
    ) -> CompiledGraph:
        """The OpenVINO model of the module ``graph`` builds: its ONNX graph from the cache, else
        exported (and cached). OpenVINO's runtime reads ONNX itself; its Python converter is
        not used (it sends usage telemetry by default)."""
        name = f"{self.precision}-{part}" + ("-masked" if masked else "")
        path = entry_path(GRAPHS, GRAPHS.key(key, part, f"masked={masked}"), name)
        if path.is_file():
            try:
                return CompiledGraph(
                    self._core, self._core.read_model(str(path)), self.config, path
                )
            except RuntimeError as exc:
                log.warning("OpenVINO cache entry %s unreadable (%s); exporting again", path, exc)
        log.info("exporting the model for OpenVINO (%s); cached in %s", self.precision, path)
        if store(path, lambda tmp: self._export(graph(), tmp, channels, masked)):
            return CompiledGraph(self._core, self._core.read_model(str(path)), self.config, path)
        with tempfile.TemporaryDirectory() as scratch:  # an unwritable cache: export each time
            target = Path(scratch) / "model.onnx"
            self._export(graph(), target, channels, masked)
            return CompiledGraph(self._core, self._core.read_model(str(target)), self.config)

    def _export(self, module: nn.Module, target: Path, channels: int, masked: bool) -> None:
        """ONNX with dynamic N, H and W, by the TorchScript exporter (seconds, where the
        torch.export-based one takes minutes on the full model). ``channels``: the graph's
        input channels when it is not the image (the tail's features); ``masked``: the graph
        also takes a (1, 1, 1, W) column mask at the trunk's resolution."""
        side = 4 * self.multiple * 8
        example = torch.rand(1, channels or self.in_channels, side, side)
        inputs: tuple[torch.Tensor, ...] = (example,)
        names = ["input"]
        axes = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "H", 3: "W"}}
        if masked:
            inputs += (torch.ones(1, 1, 1, side if channels else side // self.multiple),)
            names.append("mask")
            axes["mask"] = {3: "m"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                inputs,
                str(target),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=names,
                output_names=["output"],
                dynamic_axes=axes,
            )


def _weights_key(module: nn.Module, precision: str, extra: str, ov_version: str) -> str:
    """The cache key of a graph: the weights, precision, quantisation settings and OpenVINO."""
    return GRAPHS.key(weights_sha256(module), precision, extra, f"openvino={ov_version}")


def prepare(request: EngineRequest) -> Network:
    """The network compiled by OpenVINO for this precision (int8: our calibration)."""
    return OpenVinoEngine(
        request.module, request.precision, torch.get_num_threads(), request.calibration
    )
