"""OpenVINO as an optional CPU engine (``--engine openvino``): the same network, compiled by Intel's
inference runtime, which on the CPUs measured here runs it 1.3-2x faster than PyTorch's oneDNN
calls (README, speed table).

- fp32 and bf16: the PyTorch module is exported to ONNX once and compiled with OpenVINO's f32
  or bf16 inference precision.
- int8: the network is exported with fake-quantisation (QDQ) nodes placed as our own int8
  engine quantises the dense blocks (:mod:`esrgan_plugin.int8`: per-channel int8 weights; each
  dense block's input ``x`` on its own uint8 scale and its features on one shared scale; the
  last RRDB, the head and the residual stream unquantised), with the same calibration, plus the
  tail's convolutions (up-sampling and ``conv_hr``, on their calibrated input ranges: measured
  1-6% faster, 0.2-1.6 dB lower); OpenVINO's low-precision transformations then run those
  convolutions in int8.

Converted models are cached (``$ESRGAN_CACHE_DIR/openvino/``, keyed by the weights, precision,
calibration and OpenVINO version; written atomically) and compiled once per input shape.
OpenVINO is an optional extra (``pip install -e '.[openvino]'``), never required.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from esrgan_plugin.arch.needs import model_needs
from esrgan_plugin.arch.rrdbnet import NEGATIVE_SLOPE, RESIDUAL_SCALE, ResidualDenseBlock, RRDBNet
from esrgan_plugin.arch.strips import map_row_strips, strip_rows
from esrgan_plugin.errors import InferenceError
from pipelines.io.atomic import atomic_target

log = logging.getLogger(__name__)

ENGINE_VERSION = "openvino-engine/3"
"""Part of every cache key: a change to how graphs are built invalidates old entries."""

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}
"""OpenVINO inference precision per ``--precision``; for int8 the precision of what is not
quantised: bf16 where the CPU computes it natively (measured on RealESRGAN_x4plus: 0.117 s at
46.6 dB against 0.147 s at 47.6 dB with f32 around the int8 convs), else f32."""

ONNX_OPSET = 17
"""Opset of the exported graph (13+ for per-channel QuantizeLinear)."""

COMPILED_SHAPES = 8
"""Compiled models kept per engine, one per input shape (tiles come in a few shapes)."""


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
    """One exported graph, compiled by OpenVINO once per input shape (least recently used
    shapes dropped beyond :data:`COMPILED_SHAPES`)."""

    def __init__(self, core: Any, model: Any, config: dict[str, str]) -> None:
        self.core, self.model, self.config = core, model, config
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        request = self._request(tuple(x.shape))
        request.infer({0: x.float().contiguous().numpy()})
        return torch.from_numpy(np.array(request.get_output_tensor(0).data, copy=True))

    def _request(self, shape: tuple[int, ...]) -> Any:
        if shape in self._compiled:
            self._compiled.move_to_end(shape)
            return self._compiled[shape]
        model = self.model.clone()
        model.reshape(list(shape))
        request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        self._compiled[shape] = request
        if len(self._compiled) > COMPILED_SHAPES:
            self._compiled.popitem(last=False)
        return request


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
            self.trunk = CompiledGraph(self._core, self._converted(module, key, 0), config)
            return
        graph: nn.Module = module.eval()
        extra = ""
        if precision == "int8":
            from esrgan_plugin.calibration import calibration_for
            from esrgan_plugin.int8 import default_int8_options

            ranges = calibration_for(module, calibration)
            keep_last = default_int8_options().keep_last
            graph = FakeQuantRRDBNet(module, ranges, keep_last, quantize_tail)
            extra = ranges.to_json() + f"keep_last={keep_last},tail={quantize_tail}"
        key = _weights_key(module, precision, extra, self.ov.__version__)
        features = module.config.num_features
        self.tail_scale = 2**module.config.num_upsample
        trunk, tail = _Part(graph, "trunk"), _Part(graph, "tail")
        self.trunk = CompiledGraph(self._core, self._converted(trunk, f"{key}-trunk", 0), config)
        self.tail = CompiledGraph(
            self._core, self._converted(tail, f"{key}-tail", features), config
        )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """NCHW float input in [0, 1] -> upscaled float32 output (padded to the model's multiple)."""
        height, width = batch.shape[-2:]
        x = batch.float()
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        if pad_h or pad_w:
            mode = "reflect" if min(height, width) > max(pad_h, pad_w) else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = self.trunk(x)
        if self.tail is not None:
            rows = strip_rows(out.shape[-1], out.shape[1], self.tail_scale)
            out = map_row_strips(self.tail, out, self.tail_scale, rows)
        return out[..., : height * self.scale, : width * self.scale]

    def _hint(self) -> str:
        from esrgan_plugin.device import cpu_has_native_bf16

        hint = PRECISION_HINTS[self.precision]
        if self.precision == "int8" and not cpu_has_native_bf16():
            return "f32"
        return hint

    def _converted(self, module: nn.Module, key: str, channels: int) -> Any:
        """The OpenVINO model of ``module``: its ONNX graph from the cache, else exported (and
        cached). OpenVINO's runtime reads ONNX itself; its Python converter is not used (it
        sends usage telemetry by default)."""
        from esrgan_plugin.model_cache import cache_dir

        path = cache_dir() / "openvino" / f"{key}.onnx"
        if path.is_file():
            try:
                return self._core.read_model(str(path))
            except RuntimeError as exc:
                log.warning("OpenVINO cache entry %s unreadable (%s); exporting again", path, exc)
        log.info("exporting the model for OpenVINO (%s); cached in %s", self.precision, path)
        try:
            with atomic_target(path) as tmp:
                self._export(module, tmp, channels)
            return self._core.read_model(str(path))
        except OSError as exc:  # a read-only cache costs an export next time, nothing else
            log.warning("could not cache the OpenVINO model in %s: %s", path, exc)
        with tempfile.TemporaryDirectory() as scratch:
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
    digest = hashlib.sha256(f"{ENGINE_VERSION}|{ov_version}|{precision}|".encode())
    digest.update(type(module).__name__.encode())
    config = getattr(module, "config", None)
    digest.update(repr(config).encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    digest.update(extra.encode())
    return f"{precision}-{digest.hexdigest()[:32]}"


# ----------------------------------------------------------------------------- int8 graph


class _Part(nn.Module):
    """One method of a graph module (``trunk`` or ``tail``) as a module to export."""

    def __init__(self, graph: nn.Module, method: str) -> None:
        super().__init__()
        self.graph, self.method = graph, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, getattr(self.graph, self.method)(x))


class FakeQuantDenseBlock(nn.Module):
    """A dense block computing exactly what :class:`esrgan_plugin.int8.Int8DenseBlock` computes,
    written with fake-quantisation ops (on activations and weights) that OpenVINO's
    low-precision transformations turn into int8 convolutions."""

    def __init__(self, block: ResidualDenseBlock, ranges: Any) -> None:
        super().__init__()
        convs = [getattr(block, f"conv{i}") for i in range(1, 6)]
        scales = [1.0, 1.0, 1.0, 1.0, RESIDUAL_SCALE]
        nf = block.conv1.in_channels
        self.widths = [c.out_channels for c in convs]
        self.x_range, self.f_range = ranges.x, ranges.features
        self.from_x = _FakeQuantConv(
            torch.cat([c.weight[:, :nf] * k for c, k in zip(convs, scales, strict=True)]),
            torch.cat([c.bias * k for c, k in zip(convs, scales, strict=True)]),
        )
        self.from_features = nn.ModuleList(
            _FakeQuantConv(c.weight[:, nf:] * k, None)
            for c, k in zip(convs[1:], scales[1:], strict=True)
        )

    def _fq(self, x: torch.Tensor, r: Any) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, r.scale, r.zero_point, 0, 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.from_x(self._fq(x, self.x_range)).split(self.widths, 1)
        features = [self._fq(F.leaky_relu(parts[0], NEGATIVE_SLOPE), self.f_range)]
        out = x
        for k, conv in enumerate(self.from_features, start=1):
            pre = parts[k] + conv(torch.cat(features, 1))
            if k == 4:
                out = x + pre
                break
            features.append(self._fq(F.leaky_relu(pre, NEGATIVE_SLOPE), self.f_range))
        return out


class _FakeQuantConv(nn.Module):
    """A 3x3 conv whose weight is fake-quantised per output channel (symmetric int8) when run."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        weight = weight.detach().float()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = (
            None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)
        )
        self.register_buffer("w_scale", weight.abs().amax((1, 2, 3)).clamp_min(1e-12) / 127.0)
        self.register_buffer("w_zero", torch.zeros(weight.shape[0], dtype=torch.int32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero = cast(torch.Tensor, self.w_scale), cast(torch.Tensor, self.w_zero)
        weight = torch.fake_quantize_per_channel_affine(self.weight, scale, zero, 0, -128, 127)
        return F.conv2d(x, weight, self.bias, padding=1)


class _FloatConv(nn.Module):
    """A 3x3 conv kept in float (the tail when it is not quantised)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().float(), requires_grad=False)
        self.bias = (
            None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=1)


class FakeQuantRRDBNet(nn.Module):
    """The int8 graph: ``net`` with fake-quantised dense blocks (but the last ``keep_last``) and
    a fake-quantised tail (each up-sampling conv and ``conv_hr`` reads uint8 on its calibrated
    range; ``conv_last`` stays in float). The input must be a multiple of the pixel-unshuffle
    factor (the engine pads)."""

    def __init__(
        self, net: RRDBNet, calibration: Any, keep_last: int, quantize_tail: bool = True
    ) -> None:
        super().__init__()
        self.quantize_tail = quantize_tail
        self.net = net = copy.deepcopy(net).eval()
        blocks = 3 * net.config.num_blocks
        for i, rrdb in enumerate(net.body):
            for j, name in enumerate(("rdb1", "rdb2", "rdb3")):
                index = 3 * i + j
                if index < blocks - keep_last:
                    block = FakeQuantDenseBlock(getattr(rrdb, name), calibration.ranges[index])
                    setattr(rrdb, name, block)
        convs = [*net.up_convs(), net.conv_hr]
        if len(calibration.tail) != len(convs):
            raise ValueError(
                f"calibration has {len(calibration.tail)} tail ranges, the model {len(convs)} "
                "tail convolutions"
            )
        self.tail_ranges = calibration.tail
        quantized = _FakeQuantConv if quantize_tail else _FloatConv
        self.ups = nn.ModuleList(quantized(c.weight, c.bias) for c in net.up_convs())
        self.hr = quantized(net.conv_hr.weight, net.conv_hr.bias)

    def _fq(self, x: torch.Tensor, index: int) -> torch.Tensor:
        if not self.quantize_tail:
            return x
        r = self.tail_ranges[index]
        return torch.fake_quantize_per_tensor_affine(x, r.scale, r.zero_point, 0, 255)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.trunk(x)  # its dense blocks are the fake-quantised ones

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.trunk(x))

    def tail(self, feat: torch.Tensor) -> torch.Tensor:
        net = self.net
        for i, up in enumerate(self.ups):
            upsampled = F.interpolate(self._fq(feat, i), scale_factor=2, mode="nearest")
            feat = F.leaky_relu(up(upsampled), NEGATIVE_SLOPE)
        hr = F.leaky_relu(self.hr(self._fq(feat, len(self.ups))), NEGATIVE_SLOPE)
        return net.conv_last(hr)
