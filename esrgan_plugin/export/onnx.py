"""ONNX export of any loaded model, checked against onnxruntime before it is written.

The graph comes from PyTorch's ``torch.export``-based exporter (``torch.onnx.export(...,
dynamo=True)``, which needs the ``onnx`` and ``onnxscript`` packages: the ``onnx`` extra) at
opset :data:`DEFAULT_OPSET`. The input is ``input`` (N, C, H, W) in [0, 1], the output
``output`` (N, C, s*H, s*W); fp32 by default, fp16 in and out with ``fp16``. A static export
has one fixed input shape; a dynamic one takes any batch and any H, W of at least
:data:`MIN_DYNAMIC_SIDE` pixels (models that pixel-unshuffle their input, x1 and x2, pad it in
the graph the way the PyTorch module does and crop the output back).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from esrgan_plugin.arch.tracing import network_name, trace_refusal
from esrgan_plugin.errors import EsrganError
from pipelines.api import atomic_target, first_line

if TYPE_CHECKING:
    import onnx

    from esrgan_plugin.models.loading import LoadedModel

DEFAULT_OPSET = 18
"""ONNX opset written by default (the lowest the torch.export-based exporter emits)."""

MIN_DYNAMIC_SIDE = 4
"""Smallest height and width a dynamic export accepts (reflect padding needs a few pixels)."""

INPUT_NAME = "input"
OUTPUT_NAME = "output"

FP32_TOLERANCE = 1e-4
"""Largest absolute difference allowed between onnxruntime and PyTorch outputs (fp32 export)."""

FP16_TOLERANCE = 2e-2
"""Largest absolute difference allowed between an fp16 export and PyTorch fp32 (about 5/255):
fp16 keeps 11 significant bits, and rounding accumulates through dozens of convolutions."""

_TRACE_SHAPE = (2, 24, 28)
"""(batch, height, width) of the example a dynamic export is traced with."""

_CHECK_SHAPE = (2, 19, 23)
"""(batch, height, width) a dynamic export is checked on: odd, and unlike the trace example."""


class ExportError(EsrganError):
    """A model that cannot be exported, a bad export setting or an unwritable output."""


@dataclass(frozen=True)
class OnnxExportOptions:
    """How to export: fixed or dynamic shape, precision, opset."""

    dynamic: bool = False
    fp16: bool = False
    height: int = 64
    """Input height of a static export (ignored when ``dynamic``)."""
    width: int = 64
    """Input width of a static export (ignored when ``dynamic``)."""
    batch: int = 1
    """Batch size of a static export (ignored when ``dynamic``)."""
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            if getattr(self, name) < MIN_DYNAMIC_SIDE:
                raise ExportError(
                    f"export {name} {getattr(self, name)}: expected at least {MIN_DYNAMIC_SIDE}"
                )
        if self.batch < 1:
            raise ExportError(f"export batch {self.batch}: expected at least 1")
        if self.opset < DEFAULT_OPSET:
            raise ExportError(
                f"opset {self.opset}: the exporter writes opset {DEFAULT_OPSET} or newer"
            )

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"

    @property
    def tolerance(self) -> float:
        return FP16_TOLERANCE if self.fp16 else FP32_TOLERANCE


@dataclass(frozen=True)
class OnnxExport:
    """What was exported: the file, its input/output shapes (ints or dimension names)."""

    path: Path | None
    input_shape: tuple[int | str, ...]
    output_shape: tuple[int | str, ...]
    opset: int
    precision: str
    max_abs_error: float | None
    """onnxruntime against PyTorch fp32 on a check input; None when not checked."""
    check_shape: tuple[int, ...] | None


class PadToMultiple(nn.Module):
    """Pads H and W up to a multiple without Python branches on the shape, then crops back.

    A dynamic ONNX graph cannot keep the module's shape-dependent ``if``; this wrapper pads
    with reflection (what the module does for inputs of at least :data:`MIN_DYNAMIC_SIDE`
    pixels), so the wrapped module always sees a multiple and the output matches it exactly.
    """

    def __init__(self, module: nn.Module, multiple: int, scale: int) -> None:
        super().__init__()
        self.module = module
        self.multiple = multiple
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        pad_h = (self.multiple - height % self.multiple) % self.multiple
        pad_w = (self.multiple - width % self.multiple) % self.multiple
        out = self.module(F.pad(x, (0, pad_w, 0, pad_h), mode="reflect"))
        return out[..., : height * self.scale, : width * self.scale]


def _require_exporter() -> None:
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(
            f"ONNX export needs the {' and '.join(missing)} package(s): "
            "pip install 'esrgan-pipelines[onnx]'"
        )


def export_graph(
    module: nn.Module,
    in_channels: int,
    scale: int,
    multiple_of: int = 1,
    options: OnnxExportOptions | None = None,
) -> onnx.ModelProto:
    """The ONNX graph of ``module`` (an image-to-image network) for ``options``."""
    _require_exporter()
    options = options or OnnxExportOptions()
    net = copy.deepcopy(module).eval().requires_grad_(False).cpu()
    dtype = torch.float16 if options.fp16 else torch.float32
    net = net.to(dtype)
    if options.dynamic:
        if multiple_of > 1:
            net = PadToMultiple(net, multiple_of, scale).eval()
        batch, height, width = _TRACE_SHAPE
        dims = {
            0: torch.export.Dim("batch", min=1),
            2: torch.export.Dim("height", min=MIN_DYNAMIC_SIDE),
            3: torch.export.Dim("width", min=MIN_DYNAMIC_SIDE),
        }
        dynamic_shapes: tuple[dict[int, Any], ...] | None = (dims,)
    else:
        batch, height, width = options.batch, options.height, options.width
        dynamic_shapes = None
    example = torch.rand(batch, in_channels, height, width).to(dtype)
    refusal = trace_refusal(net, example)  # before the exporter, which may crash on it
    if refusal is not None:
        raise ExportError(f"{network_name(module)}: {refusal}")
    try:
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            opset_version=options.opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            verbose=False,
        )
    except Exception as exc:  # the exporter raises many types; name the first line
        raise ExportError(
            f"{type(module).__name__}: ONNX export failed: {first_line(exc)}"
        ) from None
    if program is None:
        raise ExportError(f"{type(module).__name__}: the exporter returned no graph")
    graph = program.model_proto
    if options.dynamic:
        _name_output_dims(graph, scale)
    return graph


def _name_output_dims(graph: onnx.ModelProto, scale: int) -> None:
    """Name the output's dynamic dims ``batch``, ``{s}*height``, ``{s}*width``.

    The exporter names them by the symbolic expression it derived (for padded x1/x2 models a
    long Min/Mod formula); the values are the same, this only makes the signature readable.
    """
    factor = "" if scale == 1 else f"{scale}*"
    dims = graph.graph.output[0].type.tensor_type.shape.dim
    for dim, name in zip(dims, ("batch", None, f"{factor}height", f"{factor}width"), strict=True):
        if name is not None and dim.dim_param:
            dim.dim_param = name


def check_graph(
    graph: onnx.ModelProto | bytes,
    module: nn.Module,
    in_channels: int,
    options: OnnxExportOptions | None = None,
) -> tuple[float, tuple[int, ...]]:
    """Largest |onnxruntime - PyTorch fp32| on a random input, and that input's shape."""
    options = options or OnnxExportOptions()
    if options.dynamic:
        batch, height, width = _CHECK_SHAPE
    else:
        batch, height, width = options.batch, options.height, options.width
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, in_channels, height, width, generator=generator)
    with torch.inference_mode():
        reference = module.eval()(x).float().numpy()
    feed = x.numpy().astype(np.float16 if options.fp16 else np.float32)
    try:
        output = run_onnxruntime(graph, feed).astype(np.float32)
    except ExportError:
        raise
    except Exception as exc:  # onnxruntime's own errors (e.g. shapes traced as constants)
        raise ExportError(
            f"{network_name(module)}: the exported graph fails in onnxruntime on a "
            f"{tuple(x.shape)} input ({first_line(exc)[:200]}); nothing written"
        ) from None
    if output.shape != reference.shape:
        raise ExportError(
            f"onnxruntime output shape {output.shape} differs from PyTorch's {reference.shape}"
        )
    return float(np.abs(output - reference).max()), tuple(x.shape)


def run_onnxruntime(graph: onnx.ModelProto | bytes | str | Path, x: np.ndarray) -> np.ndarray:
    """Run an exported graph once on the CPU with onnxruntime (the ``dev`` extra)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("checking an export needs onnxruntime: pip install onnxruntime") from None
    if isinstance(graph, (str, Path)):
        source: str | bytes = str(graph)
    elif isinstance(graph, bytes):
        source = graph
    else:
        source = graph.SerializeToString()
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a failure is reported by our one line
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def _shape_of(value_info: Any) -> tuple[int | str, ...]:
    return tuple(
        d.dim_param if d.dim_param else int(d.dim_value)
        for d in value_info.type.tensor_type.shape.dim
    )


def _metadata(model: LoadedModel, options: OnnxExportOptions) -> dict[str, str]:
    from esrgan_plugin.models.loading import FORMAT_TAG

    meta = {
        "format": FORMAT_TAG,
        "architecture": model.architecture,
        "scale": str(model.scale),
        "in_channels": str(model.in_channels),
        "out_channels": str(model.out_channels),
        "multiple_of": str(model.multiple_of),
        "precision": options.precision,
        "dynamic": str(options.dynamic).lower(),
        "value_range": "0..1",
        "source": Path(model.source).name if model.source else "",
    }
    meta.update({f"model.{k}": str(v) for k, v in model.metadata.items()})
    return meta


def export_onnx(
    model: LoadedModel,
    path: str | os.PathLike[str],
    options: OnnxExportOptions | None = None,
    *,
    check: bool = True,
    overwrite: bool = False,
) -> OnnxExport:
    """Export ``model`` to ``path`` (.onnx), checked against onnxruntime first, written atomically.

    With ``check`` the graph is run by onnxruntime and compared with the PyTorch fp32 module;
    a difference above the options' tolerance is an error and nothing is written.
    """
    options = options or OnnxExportOptions()
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ExportError(f"{path}: the output must be a .onnx file")
    if path.exists() and not overwrite:
        raise ExportError(f"{path}: output exists; pass --overwrite to replace it")
    _check_writable(path)  # before an export that can take minutes
    graph = export_graph(model.module, model.in_channels, model.scale, model.multiple_of, options)
    _set_metadata(graph, _metadata(model, options))
    error: float | None = None
    check_shape: tuple[int, ...] | None = None
    if check:
        error, check_shape = check_graph(graph, model.module, model.in_channels, options)
        if not error <= options.tolerance:
            raise ExportError(
                f"{path}: onnxruntime differs from PyTorch by {error:.3g} on a {check_shape} "
                f"input (tolerance {options.tolerance:g}); nothing written"
            )
    write_graph(graph, path)
    return OnnxExport(
        path,
        _shape_of(graph.graph.input[0]),
        _shape_of(graph.graph.output[0]),
        options.opset,
        options.precision,
        error,
        check_shape,
    )


def _set_metadata(graph: onnx.ModelProto, metadata: Mapping[str, str]) -> None:
    import onnx

    onnx.helper.set_model_props(graph, dict(metadata))


def _check_writable(path: Path) -> None:
    """Refuse an output whose folder cannot be created or written, naming why."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ExportError(f"{path}: cannot write ONNX file ({folder} is not a folder)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"{path}: cannot write ONNX file ({folder} is not writable)")


def write_graph(graph: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    """Serialise ``graph`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    try:
        data = graph.SerializeToString()
    except ValueError as exc:  # protobuf refuses messages over 2 GB
        raise ExportError(f"{path}: the graph is too large to serialise ({exc})") from None
    try:
        with atomic_target(path) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write ONNX file ({exc.strerror or exc})") from None
    return path
