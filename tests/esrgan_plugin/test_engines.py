"""Every engine against the module, over architectures and precisions; the engine table's rules.

One matrix replaces the per-engine parity tests: for each engine x architecture x precision the
table accepts, the Upscaler's float output (whole image, odd size) is compared with the fp32
module's, within the stated tolerance of that precision. Combinations the table refuses must
be refused with a one-line error naming the engine and the reason.
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import Callable

import pytest
import torch
from helpers import tiny_rrdbnet
from test_compact import tiny_compact
from torch import nn

from esrgan_plugin.arch import SRResNet, SRResNetConfig
from esrgan_plugin.arch.registry import architecture_of
from esrgan_plugin.cli import main
from esrgan_plugin.engines.onednn.fused import bf16_convolutions_available
from esrgan_plugin.engines.registry import (
    AUTO_OPENVINO_MIN_PARAMETERS,
    ENGINE_CHOICES,
    ENGINES,
    auto_order,
    choose_engine,
    engine_named,
)
from esrgan_plugin.errors import InferenceError
from esrgan_plugin.inference import Upscaler
from esrgan_plugin.options import Engine, UpscaleOptions

MIN_PSNR = {"fp32": 80.0, "bf16": 35.0, "int8": 28.0}
"""Stated tolerances against the fp32 module (dB, outputs clamped to [0, 1]) on tiny random
networks: fp32 differs only by summation order (about 1e-5), bf16 keeps 8 significant bits,
int8 quantises the dense blocks (and, in OpenVINO, the tail)."""

NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "rrdbnet-x4": lambda: tiny_rrdbnet(scale=4, nf=16, nb=2, gc=8),
    "rrdbnet-x2": lambda: tiny_rrdbnet(scale=2, nf=16, nb=2, gc=8),
    "rrdbnet-x1": lambda: tiny_rrdbnet(scale=1, nf=16, nb=1, gc=8),
    "rrdbnet-x8": lambda: tiny_rrdbnet(scale=8, nf=8, nb=1, gc=4),
    "compact": tiny_compact,
    "srresnet": lambda: SRResNet(SRResNetConfig(num_features=8, num_blocks=2, scale=2)).eval(),
}
CPU = torch.device("cpu")
TORCH_BF16 = "onednn" if bf16_convolutions_available() else "pytorch"
"""The ``torch`` group's engine for bf16 on this CPU (oneDNN's bf16 convolutions need
AVX-512 BW/VL/DQ or AVX-NE-CONVERT)."""


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double().clamp(0, 1) - b.double().clamp(0, 1)) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@pytest.mark.parametrize("precision", sorted(MIN_PSNR))
@pytest.mark.parametrize("network", sorted(NETWORKS))
@pytest.mark.parametrize("engine", [e.name for e in ENGINES])
def test_every_engine_matches_the_module(engine: str, network: str, precision: str) -> None:
    net = NETWORKS[network]()
    reason = engine_named(engine).supports(architecture_of(net), CPU, precision)
    options = UpscaleOptions(engine=engine, precision=precision, device="cpu", tile=0)
    if reason is not None:
        with pytest.raises(InferenceError, match=f"engine {engine} cannot run"):
            Upscaler(net, options)
        return
    x = torch.rand(1, net.config.in_channels, 21, 19)
    with torch.no_grad():
        expected = net(x)
    actual = Upscaler(net, options).upscale_tensor(x)
    assert actual.shape == expected.shape
    assert psnr(actual, expected) >= MIN_PSNR[precision]
    if precision != "fp32":
        assert not torch.equal(actual, expected)  # the precision is really in use


def test_the_table_refuses_what_no_engine_runs() -> None:
    compact = architecture_of(tiny_compact())
    rrdbnet = architecture_of(tiny_rrdbnet())
    with pytest.raises(InferenceError, match="onednn cannot run SRVGGNetCompact"):
        choose_engine("onednn", compact, CPU, "fp32")
    with pytest.raises(InferenceError, match="fp16"):
        choose_engine("auto", rrdbnet, CPU, "fp16")
    with pytest.raises(
        InferenceError,
        match="engine openvino cannot run RRDBNet in fp32 on cuda: it runs on cpu, not on cuda",
    ):
        choose_engine("openvino", rrdbnet, torch.device("cuda"), "fp32")
    with pytest.raises(InferenceError, match="int8 on RRDBNet models only"):
        choose_engine("auto", compact, CPU, "int8")
    assert choose_engine("auto", rrdbnet, torch.device("cuda"), "fp16").name == "pytorch"
    assert choose_engine("torch", compact, CPU, "fp32").name == "pytorch"
    assert choose_engine("torch", rrdbnet, CPU, "bf16").name == TORCH_BF16


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_auto_takes_the_first_engine_of_the_measured_order_that_runs_the_request(
    precision: str,
) -> None:
    rrdbnet = architecture_of(tiny_rrdbnet())
    order = auto_order(precision)
    expected = next(
        name for name in order if engine_named(name).supports(rrdbnet, CPU, precision) is None
    )
    assert choose_engine("auto", rrdbnet, CPU, precision).name == expected
    assert set(order) == {e.name for e in ENGINES}


def test_bf16_has_its_own_measured_order() -> None:
    """In bf16 the module under autocast measured faster than onednn's fused kernels, so a
    network too small for openvino runs on pytorch in bf16 and on onednn in fp32."""
    rrdbnet = architecture_of(tiny_rrdbnet())
    small = AUTO_OPENVINO_MIN_PARAMETERS - 1
    assert auto_order("bf16") == ("openvino", "pytorch", "onednn")
    assert choose_engine("auto", rrdbnet, CPU, "bf16", small).name == "pytorch"
    assert choose_engine("auto", rrdbnet, CPU, "fp32", small).name == "onednn"
    assert choose_engine("torch", rrdbnet, CPU, "bf16", small).name == TORCH_BF16  # unchanged


def test_onednn_refuses_bf16_where_the_cpu_has_no_onednn_bf16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import esrgan_plugin.engines.onednn.engine as onednn

    monkeypatch.setattr(onednn, "bf16_convolutions_available", lambda: False)
    rrdbnet = architecture_of(tiny_rrdbnet())
    with pytest.raises(
        InferenceError,
        match="engine onednn cannot run RRDBNet in bf16 on cpu: it needs oneDNN's bf16 "
        "convolutions, which this CPU lacks",
    ):
        choose_engine("onednn", rrdbnet, CPU, "bf16")
    assert choose_engine("torch", rrdbnet, CPU, "bf16").name == "pytorch"
    assert choose_engine("onednn", rrdbnet, CPU, "fp32").name == "onednn"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_bf16_arithmetic_is_a_warning(
    native: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import esrgan_plugin.device as device

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native)
    options = UpscaleOptions(engine="pytorch", precision="bf16", device="cpu", tile=0)
    with caplog.at_level("WARNING"):
        Upscaler(tiny_rrdbnet(), options)
        Upscaler(tiny_rrdbnet(), UpscaleOptions(engine="pytorch", device="cpu", tile=0))
    warned = [r.getMessage() for r in caplog.records if "bf16 arithmetic" in r.getMessage()]
    if native:
        assert warned == []
    else:
        assert warned == [
            "precision bf16: this CPU has no bf16 arithmetic (AVX512-BF16 or AMX); engine "
            "pytorch emulates it: bf16's rounding, far slower than fp32; use fp32"
        ]


def test_auto_keeps_small_networks_off_an_engine_with_fixed_costs() -> None:
    rrdbnet = architecture_of(tiny_rrdbnet())
    small = AUTO_OPENVINO_MIN_PARAMETERS - 1
    assert choose_engine("auto", rrdbnet, CPU, "fp32", small).name == "onednn"
    assert choose_engine("openvino", rrdbnet, CPU, "fp32", small).name == "openvino"
    if engine_named("openvino").supports(rrdbnet, CPU, "fp32") is None:
        assert choose_engine("auto", rrdbnet, CPU, "fp32", 16_697_987).name == "openvino"
    assert Upscaler(tiny_rrdbnet(), UpscaleOptions(device="cpu")).engine.name == "onednn"


def test_the_options_offer_exactly_the_table_s_choices() -> None:
    assert set(typing.get_args(Engine)) == set(ENGINE_CHOICES)


def test_esrgan_engines_lists_every_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["engines", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == [e.name for e in ENGINES]
    pytorch = next(row for row in rows if row["name"] == "pytorch")
    assert pytorch["installed"] and {r["device"] for r in pytorch["runs"]} == {"cpu", "cuda", "mps"}
    assert pytorch["auto_rank_by_precision"] == {"bf16": 2}
    assert main(["engines"]) == 0
    text = capsys.readouterr().out
    assert all(f"{e.name}: " in text for e in ENGINES)
    assert "auto tries it #3 (#2 in bf16)" in text


def test_a_missing_package_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a)
    )
    rrdbnet = architecture_of(tiny_rrdbnet())
    with pytest.raises(
        InferenceError, match="it needs the openvino package, which is not installed"
    ):
        choose_engine("openvino", rrdbnet, CPU, "fp32")
    assert choose_engine("auto", rrdbnet, CPU, "fp32").name != "openvino"
