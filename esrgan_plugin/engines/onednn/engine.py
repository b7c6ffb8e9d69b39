"""The ``onednn`` engine (CPU, RRDBNet): the fused fp32/bf16 network (:mod:`.fused`) or the int8
one (:mod:`.int8`), and what this PyTorch build lacks for them."""

from __future__ import annotations

from esrgan_plugin.arch.rrdbnet import RRDBNet
from esrgan_plugin.engines.base import EngineRequest, Network
from esrgan_plugin.engines.calibration import calibration_for
from esrgan_plugin.engines.onednn.fused import (
    BF16,
    FP32,
    FusedRRDBNet,
    bf16_convolutions_available,
    fused_ops_available,
)
from esrgan_plugin.engines.onednn.int8 import (
    default_int8_options,
    int8_available,
    quantize_rrdbnet,
)


def prepare(request: EngineRequest) -> Network:
    """The fused network for fp32/bf16, or the int8 one calibrated on the request's images."""
    net = request.module
    assert isinstance(net, RRDBNet)
    if request.precision == "int8":
        return quantize_rrdbnet(
            net, calibration_for(net, request.calibration), default_int8_options()
        )
    return FusedRRDBNet(net, BF16 if request.precision == "bf16" else FP32)


def missing(precision: str) -> str | None:
    """Why this PyTorch, on this CPU, cannot run the engine in ``precision``, or None (a verb
    phrase: the engine ...)."""
    if not fused_ops_available():
        return "needs oneDNN's fused convolutions, which this PyTorch build lacks"
    if precision == "int8" and not int8_available():
        return "needs oneDNN's int8 convolutions, which this PyTorch build lacks"
    if precision == "bf16" and not bf16_convolutions_available():
        return (
            "needs oneDNN's bf16 convolutions, which this CPU lacks (AVX-512 BW/VL/DQ or "
            "AVX-NE-CONVERT); use fp32"
        )
    return None
