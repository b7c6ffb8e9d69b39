"""Reading ncnn model files: the ``.param`` text graph and the ``.bin`` weights beside it.

The ``.param`` file lists layers in execution order (kind, name, input and output blobs,
``key=value`` parameters; ``-233xx=n,v1,..`` for arrays). The ``.bin`` file holds each layer's
weights in that order: a convolution's weight block starts with a 4-byte storage tag (fp16,
fp32, or a 256-entry quantisation table; int8 is refused), its bias and PReLU slopes are raw
fp32. Only the layer kinds the ESRGAN-family graphs use are known; anything else is a one-line
error naming the layer. Turning a graph into an architecture is ``ncnn_models``' job.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from esrgan_plugin.errors import CheckpointError

MAGIC = 7767517
"""First line of every ncnn ``.param`` text file."""

ParamValue = int | float | tuple[int | float, ...]

WEIGHTLESS_KINDS = frozenset(
    {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU"}
)
WEIGHTED_KINDS = frozenset({"Convolution", "PReLU"})
KNOWN_KINDS = WEIGHTLESS_KINDS | WEIGHTED_KINDS

_TAG_FP16 = 0x01306B47
_TAG_INT8 = 0x000D4B38
_TAG_FP32_SCALED = 0x0002C056


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a ``.param`` file, with the weights read for it from the ``.bin``."""

    kind: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue]
    line: int
    weights: dict[str, torch.Tensor] = field(default_factory=dict)

    def param(self, key: int, default: ParamValue) -> ParamValue:
        return self.params.get(key, default)

    def int_param(self, key: int, default: int) -> int:
        value = self.params.get(key, default)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CheckpointError(
                f"{self.where()}: parameter {key} should be a finite number, found {value!r}"
            )
        return int(value)

    def where(self) -> str:
        return f"layer {self.name} ({self.kind}, line {self.line})"


@dataclass(frozen=True)
class NcnnGraph:
    """The layers of one ncnn model, in file (execution) order."""

    param_path: Path
    bin_path: Path
    layers: tuple[NcnnLayer, ...]
    storage: tuple[str, ...]
    """Weight storage kinds met in the ``.bin`` (``fp16``, ``fp32``, ``quantized``)."""


def read_ncnn(path: str | os.PathLike[str]) -> NcnnGraph:
    """Read ``X.param`` and the ``X.bin`` beside it (either path may be given)."""
    path = Path(path)
    param_path = path.with_suffix(".param")
    bin_path = path.with_suffix(".bin")
    for p in (param_path, bin_path):
        if not p.is_file():
            raise CheckpointError(f"{p}: ncnn model file not found (a .param needs its .bin)")
    layers = read_param(param_path)
    try:
        data = bin_path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{bin_path}: cannot read ({exc.strerror or exc})") from None
    return _attach_weights(param_path, bin_path, layers, data)


# --------------------------------------------------------------------------- .param


def read_param(path: Path) -> list[NcnnLayer]:
    """Parse a ``.param`` text file into layers (no weights yet)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read ncnn param file ({exc})") from None
    if not lines or lines[0].strip() != str(MAGIC):
        raise CheckpointError(f"{path}: not an ncnn text param file (first line should be {MAGIC})")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise CheckpointError(
            f"{path} line 2: expected 'layer_count blob_count', found {lines[1:2]}"
        ) from None
    layers = [_parse_layer(path, n + 1, text) for n, text in enumerate(lines) if n >= 2]
    layers = [layer for layer in layers if layer is not None]
    if len(layers) != layer_count:
        raise CheckpointError(
            f"{path}: header announces {layer_count} layers, the file lists {len(layers)}"
        )
    return layers  # type: ignore[return-value]


def _parse_layer(path: Path, line: int, text: str) -> NcnnLayer | None:
    fields = text.split()
    if not fields:
        return None
    try:
        kind, name = fields[0], fields[1]
        n_in, n_out = int(fields[2]), int(fields[3])
        blobs = fields[4 : 4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise ValueError("too few blob names")
        params = dict(_parse_param(item) for item in fields[4 + n_in + n_out :])
    except (IndexError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{path} line {line}: malformed layer line ({exc})") from None
    if kind not in KNOWN_KINDS:
        raise CheckpointError(
            f"{path} line {line}: layer {name} has kind {kind!r}, which the ESRGAN-family "
            f"graphs do not use (known: {', '.join(sorted(KNOWN_KINDS))})"
        )
    return NcnnLayer(kind, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params, line)


def _parse_param(item: str) -> tuple[int, ParamValue]:
    key_text, sep, value_text = item.partition("=")
    if not sep:
        raise ValueError(f"parameter {item!r} is not key=value")
    key = int(key_text)
    if key <= -23300:  # an array: -23300 - id = count,v1,v2,...
        values = [_number(v) for v in value_text.split(",")]
        count = int(values[0])
        if count != len(values) - 1:
            raise ValueError(f"array parameter {item!r} announces {count} values")
        return -23300 - key, tuple(values[1:])
    return key, _number(value_text)


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("-+").isdigit() else float(text)


# --------------------------------------------------------------------------- .bin


class _Reader:
    """Sequential reads from the ``.bin`` bytes with errors naming the layer and offset."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path, self.data, self.offset = path, data, 0
        self.storage: set[str] = set()

    def take(self, nbytes: int, layer: NcnnLayer, what: str) -> bytes:
        if nbytes < 0:
            raise CheckpointError(f"{self.path}: {layer.where()} {what}: negative size {nbytes}")
        end = self.offset + nbytes
        if end > len(self.data):
            raise CheckpointError(
                f"{self.path}: file is shorter than the graph needs: {layer.where()} {what} "
                f"needs bytes {self.offset}..{end}, the file has {len(self.data)}"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def raw_fp32(self, count: int, layer: NcnnLayer, what: str) -> torch.Tensor:
        array = np.frombuffer(self.take(4 * count, layer, what), dtype="<f4")
        return torch.from_numpy(array.astype(np.float32))

    def tagged(self, count: int, layer: NcnnLayer, what: str) -> torch.Tensor:
        """A weight block with its 4-byte storage tag (ncnn's ``load(w, type=0)``)."""
        head = self.take(4, layer, what)
        (tag,) = struct.unpack("<I", head)
        if tag == _TAG_FP16:
            self.storage.add("fp16")
            raw = self.take(_align4(2 * count), layer, what)
            array = np.frombuffer(raw[: 2 * count], dtype="<f2").astype(np.float32)
        elif tag == _TAG_INT8:
            raise CheckpointError(
                f"{self.path}: {layer.where()} stores int8-quantised weights, which are not "
                "supported; use the fp16/fp32 model"
            )
        elif tag == _TAG_FP32_SCALED or sum(head) == 0:
            self.storage.add("fp32")
            array = np.frombuffer(self.take(4 * count, layer, what), dtype="<f4").copy()
        else:  # a 256-entry value table, then one uint8 index per weight
            self.storage.add("quantized")
            table = np.frombuffer(self.take(1024, layer, what), dtype="<f4")
            index = np.frombuffer(self.take(_align4(count), layer, what)[:count], dtype=np.uint8)
            array = table[index].astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(array))


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def _attach_weights(
    param_path: Path, bin_path: Path, layers: list[NcnnLayer], data: bytes
) -> NcnnGraph:
    reader = _Reader(bin_path, data)
    loaded: list[NcnnLayer] = []
    for layer in layers:
        weights: dict[str, torch.Tensor] = {}
        if layer.kind == "Convolution":
            weights = _convolution_weights(reader, layer)
        elif layer.kind == "PReLU":
            count = layer.int_param(0, 1)
            weights = {"weight": reader.raw_fp32(count, layer, "slopes")}
        loaded.append(
            NcnnLayer(
                layer.kind,
                layer.name,
                layer.inputs,
                layer.outputs,
                layer.params,
                layer.line,
                weights,
            )
        )
    extra = len(data) - reader.offset
    if extra:
        raise CheckpointError(
            f"{bin_path}: file is longer than the graph needs: {extra} bytes left after the "
            f"last weights (offset {reader.offset}); the .bin does not belong to {param_path.name}"
        )
    return NcnnGraph(param_path, bin_path, tuple(loaded), tuple(sorted(reader.storage)))


def _convolution_weights(reader: _Reader, layer: NcnnLayer) -> dict[str, torch.Tensor]:
    out_channels = layer.int_param(0, 0)
    kernel_w = layer.int_param(1, 0)
    kernel_h = layer.int_param(11, kernel_w)
    size = layer.int_param(6, 0)
    if layer.int_param(8, 0):
        raise CheckpointError(
            f"{reader.path}: {layer.where()} is int8-quantised (8=1), which is not supported"
        )
    if layer.int_param(19, 0):
        raise CheckpointError(f"{reader.path}: {layer.where()} has dynamic weights (19=1)")
    per_output = out_channels * kernel_w * kernel_h
    if out_channels < 1 or kernel_w < 1 or kernel_h < 1 or size < 1 or size % per_output:
        raise CheckpointError(
            f"{reader.path}: {layer.where()}: weight_data_size {size} is not a multiple of "
            f"num_output x kernel ({out_channels} x {kernel_h}x{kernel_w})"
        )
    in_channels = size // per_output
    weight = reader.tagged(size, layer, "weights")
    weights = {"weight": weight.reshape(out_channels, in_channels, kernel_h, kernel_w)}
    if layer.int_param(5, 0):
        weights["bias"] = reader.raw_fp32(out_channels, layer, "bias")
    return weights
