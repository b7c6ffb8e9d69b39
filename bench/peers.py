"""Peer engines on the same network and input: onnxruntime fp32/int8 and OpenVINO f32/bf16/int8.

For the benchmark tables (``bench/bench_inference.py`` calls these); nothing here is used by
the product. Every peer runs the ONNX graph of the *same* PyTorch module (exported with
``esrgan_plugin.export.onnx``, dynamic shape, fp32), so timings and outputs compare like for like.

API
---
``prepare_peers(model, input_shape, threads, calibration=None, kinds=PEER_KINDS, cache_dir=None)``
    -> ``(peers, skipped)``: a list of :class:`Peer`, one per kind whose engine is installed,
    and a list of one-line reasons for the kinds left out (package missing, no calibration).
    ``model`` is a ``LoadedModel`` or a network of a registered architecture (RRDBNet,
    SRVGGNetCompact, SRResNet); ``input_shape`` is (N, C, H, W) of the benchmark input
    (OpenVINO compiles that static shape); ``calibration`` is a list of (1, C, h, w) float32
    crops in [0, 1] for the int8 kinds (:func:`calibration_crops` makes them from an image;
    calibration matters: on RealESRGAN_x4plus four 64x64 astronaut crops gave 38.7 dB against
    fp32, four 32x32 crops far less). ``cache_dir`` keeps the exported and quantised graphs,
    keyed by weights and calibration, for the next run (exporting the full model and
    calibrating take minutes on 2 cores).
``Peer.run(x)``
    one forward pass: (N, C, H, W) float32 in [0, 1] -> (N, C, s*H, s*W) float32 (unclamped,
    like the PyTorch module). Call it in your own interleaved timing loop.
``time_peer(peer, x, repeats=3)`` -> :class:`PeerTiming` (``seconds`` per repeat, ``median``,
    the last ``output``), after one untimed warm-up call.
``time_onnxruntime(model, x, threads, int8=False, calibration=None, repeats=3)`` and
``time_openvino(model, x, threads, precision="f32"|"bf16"|"int8", calibration=None, repeats=3)``
    one-call helpers: ``(median seconds, output)``.

Kinds (``PEER_KINDS``): ``ort-fp32``, ``ort-int8``, ``ov-f32``, ``ov-bf16``, ``ov-int8``.
int8 is onnxruntime's ``quantize_static``: QDQ format, convolutions only, per-channel int8
weights, uint8 activations calibrated with MinMax on the given crops; OpenVINO runs the same
QDQ graph (its CPU plugin executes QDQ convolutions in int8). onnxruntime uses
``intra_op_num_threads=threads`` and sequential execution; OpenVINO ``INFERENCE_NUM_THREADS``
and the LATENCY hint. ``Peer.note`` says what the engine actually used (e.g. OpenVINO's
effective inference precision, which falls back to f32 on CPUs without bf16).
Install the engines with ``pip install -e '.[peers]'`` (onnxruntime is in ``dev`` too).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from esrgan_plugin.arch.registry import model_needs
from esrgan_plugin.export.onnx import INPUT_NAME, OnnxExportOptions, export_graph, write_graph
from esrgan_plugin.models.loading import LoadedModel
from pipelines.io.atomic import atomic_target

PEER_KINDS = ("ort-fp32", "ort-int8", "ov-f32", "ov-bf16", "ov-int8")

_NAMES = {
    "ort-fp32": "onnxruntime fp32",
    "ort-int8": "onnxruntime int8 (static QDQ, conv-only)",
    "ov-f32": "OpenVINO f32",
    "ov-bf16": "OpenVINO bf16",
    "ov-int8": "OpenVINO int8 (static QDQ, conv-only)",
}


@dataclass(frozen=True)
class Peer:
    """One prepared engine: call ``run`` on an (N, C, H, W) float32 array."""

    kind: str
    name: str
    run: Callable[[np.ndarray], np.ndarray]
    setup_seconds: float
    """Export + quantisation + session/compile time (not part of any timing)."""
    note: str = ""


@dataclass(frozen=True)
class PeerTiming:
    """Seconds of each timed call and the output of the last one."""

    name: str
    seconds: tuple[float, ...]
    output: np.ndarray

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass(frozen=True)
class _Net:
    module: nn.Module
    in_channels: int
    scale: int
    multiple_of: int


def _net(model: LoadedModel | nn.Module) -> _Net:
    if isinstance(model, LoadedModel):
        return _Net(model.module, model.in_channels, model.scale, model.multiple_of)
    needs = model_needs(model)
    return _Net(model, needs.in_channels, needs.scale, needs.multiple_of)


def onnx_fp32_graph(model: LoadedModel | nn.Module) -> Any:
    """The dynamic-shape fp32 ONNX graph (an ``onnx.ModelProto``) every peer starts from."""
    net = _net(model)
    return export_graph(
        net.module, net.in_channels, net.scale, net.multiple_of, OnnxExportOptions(dynamic=True)
    )


def model_key(model: LoadedModel | nn.Module) -> str:
    """A short hash of a network's weights, configuration, class and torch version."""
    net = _net(model)
    digest = hashlib.sha256()
    for name, tensor in sorted(net.module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    config = getattr(net.module, "config", None)
    digest.update(f"{type(net.module).__name__} {config!r} {torch.__version__}".encode())
    return digest.hexdigest()[:16]


def calibration_key(calibration: Sequence[np.ndarray]) -> str:
    """A short hash of the calibration crops (their shapes and values)."""
    digest = hashlib.sha256()
    for crop in calibration:
        digest.update(str(crop.shape).encode())
        digest.update(np.ascontiguousarray(crop, dtype=np.float32).tobytes())
    return digest.hexdigest()[:12]


def calibration_crops(
    image: np.ndarray, size: int = 64, count: int = 4, seed: int = 0
) -> list[np.ndarray]:
    """``count`` random ``size`` x ``size`` crops of an (H, W, C) image as (1, C, h, w) float32."""
    if image.ndim == 2:
        image = image[:, :, None]
    scale = 1.0 if image.dtype.kind == "f" else float(np.iinfo(image.dtype).max)
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    size_h, size_w = min(size, height), min(size, width)
    crops = []
    for _ in range(count):
        top = int(rng.integers(0, height - size_h + 1))
        left = int(rng.integers(0, width - size_w + 1))
        crop = image[top : top + size_h, left : left + size_w].astype(np.float32) / scale
        crops.append(np.ascontiguousarray(crop.transpose(2, 0, 1)[None]))
    return crops


def quantize_int8(
    fp32: Path, calibration: Sequence[np.ndarray], workdir: Path, out: Path | None = None
) -> Path:
    """Static int8 QDQ graph of an fp32 file (conv-only, per-channel weights), calibrated."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = workdir / "fp32-prepared.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=False)
    input_name = INPUT_NAME

    class Crops(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items = iter([{input_name: c.astype(np.float32)} for c in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    out = out or workdir / "int8.onnx"
    quantize_static(
        str(prepared),
        str(out),
        Crops(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return out


def onnxruntime_peer(kind: str, model_path: Path, threads: int, setup: float) -> Peer:
    """An onnxruntime CPU session on ``model_path`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    started = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {input_name: x})[0])

    note = f"onnxruntime {ort.__version__}, {threads} intra-op threads"
    return Peer(kind, _NAMES[kind], run, setup + time.perf_counter() - started, note)


def openvino_peer(
    kind: str, model_path: Path, threads: int, input_shape: Sequence[int], setup: float
) -> Peer:
    """An OpenVINO CPU model compiled for the static ``input_shape``."""
    import openvino as ov

    started = time.perf_counter()
    core = ov.Core()
    network = core.read_model(str(model_path))
    network.reshape(list(input_shape))
    precision = "bf16" if kind == "ov-bf16" else "f32"
    config = {
        "INFERENCE_NUM_THREADS": str(threads),
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": precision,
    }
    compiled = core.compile_model(network, "CPU", config)
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        request.infer({0: x})
        return np.array(request.get_output_tensor(0).data, copy=True)

    effective = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    note = f"OpenVINO {ov.__version__}, {threads} threads, inference precision {effective}"
    return Peer(kind, _NAMES[kind], run, setup + time.perf_counter() - started, note)


def _missing(module: str) -> str | None:
    try:
        __import__(module)
    except ImportError:
        return f"{module} is not installed (pip install -e '.[peers]')"
    return None


def prepare_peers(
    model: LoadedModel | nn.Module,
    input_shape: Sequence[int],
    threads: int,
    calibration: Sequence[np.ndarray] | None = None,
    kinds: Sequence[str] = PEER_KINDS,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[list[Peer], list[str]]:
    """Prepare each available peer of ``kinds``; the second list says why others are left out.

    With ``cache_dir`` the fp32 and int8 graphs are kept there and reused by later calls.
    """
    unknown = [k for k in kinds if k not in PEER_KINDS]
    if unknown:
        raise ValueError(f"unknown peer kinds {unknown}; expected some of {PEER_KINDS}")
    peers: list[Peer] = []
    skipped: list[str] = []
    wanted: list[str] = []
    for kind in kinds:
        reason = _missing("onnxruntime" if kind.startswith("ort") else "openvino")
        if kind.endswith("int8") and reason is None:
            reason = _missing("onnxruntime")  # the quantiser is onnxruntime's
        if kind.endswith("int8") and reason is None and not calibration:
            reason = "no calibration crops given"
        if reason:
            skipped.append(f"{_NAMES[kind]}: {reason}")
        else:
            wanted.append(kind)
    if not wanted:
        return peers, skipped
    with tempfile.TemporaryDirectory(prefix="esrgan-peers-") as tmp:
        workdir = Path(tmp)
        store = Path(cache_dir) if cache_dir is not None else workdir
        key = model_key(model)
        started = time.perf_counter()
        fp32 = store / f"{key}-fp32.onnx"
        if not fp32.is_file():
            write_graph(onnx_fp32_graph(model), fp32)
        export_seconds = time.perf_counter() - started
        int8: Path | None = None
        int8_seconds = 0.0
        if any(k.endswith("int8") for k in wanted):
            started = time.perf_counter()
            int8 = store / f"{key}-{calibration_key(calibration or [])}-int8.onnx"
            if not int8.is_file():
                with atomic_target(int8) as target:
                    quantize_int8(fp32, calibration or [], workdir, target)
            int8_seconds = time.perf_counter() - started
        for kind in wanted:
            path = int8 if kind.endswith("int8") else fp32
            assert path is not None
            setup = export_seconds + (int8_seconds if kind.endswith("int8") else 0.0)
            if kind.startswith("ort"):
                peers.append(onnxruntime_peer(kind, path, threads, setup))
            else:
                peers.append(openvino_peer(kind, path, threads, input_shape, setup))
    return peers, skipped


def time_peer(peer: Peer, x: np.ndarray, repeats: int = 3) -> PeerTiming:
    """One warm-up call, then ``repeats`` timed calls of ``peer.run(x)``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    output = peer.run(x)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        output = peer.run(x)
        seconds.append(time.perf_counter() - started)
    return PeerTiming(peer.name, tuple(seconds), output)


def _time_one(
    model: LoadedModel | nn.Module,
    x: np.ndarray,
    threads: int,
    kind: str,
    calibration: Sequence[np.ndarray] | None,
    repeats: int,
) -> tuple[float, np.ndarray]:
    peers, skipped = prepare_peers(model, x.shape, threads, calibration, kinds=[kind])
    if not peers:
        raise RuntimeError(skipped[0])
    timing = time_peer(peers[0], x, repeats)
    return timing.median, timing.output


def time_onnxruntime(
    model: LoadedModel | nn.Module,
    x: np.ndarray,
    threads: int,
    int8: bool = False,
    calibration: Sequence[np.ndarray] | None = None,
    repeats: int = 3,
) -> tuple[float, np.ndarray]:
    """Median seconds and output of onnxruntime fp32 (or static int8) on ``x``."""
    return _time_one(model, x, threads, "ort-int8" if int8 else "ort-fp32", calibration, repeats)


def time_openvino(
    model: LoadedModel | nn.Module,
    x: np.ndarray,
    threads: int,
    precision: str = "f32",
    calibration: Sequence[np.ndarray] | None = None,
    repeats: int = 3,
) -> tuple[float, np.ndarray]:
    """Median seconds and output of OpenVINO at ``precision`` (f32, bf16 or int8) on ``x``."""
    if precision not in ("f32", "bf16", "int8"):
        raise ValueError(f"OpenVINO precision {precision!r}: expected f32, bf16 or int8")
    return _time_one(model, x, threads, f"ov-{precision}", calibration, repeats)
