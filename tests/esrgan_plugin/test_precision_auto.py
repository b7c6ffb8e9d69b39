"""``precision: auto`` chosen by measurement, and the fp16 guard (non-finite or black tiles)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from helpers import save_tiny, tiny_rrdbnet

from esrgan_plugin import stages as stages_module
from esrgan_plugin.arch.rrdbnet import ARCHITECTURE as RRDBNET
from esrgan_plugin.cache import PRECISION_CHOICES, cache_dir
from esrgan_plugin.engines import precision as precision_module
from esrgan_plugin.engines import pytorch as pytorch_engine
from esrgan_plugin.engines.base import EngineRequest
from esrgan_plugin.engines.fallback import BLACK, GuardedNetwork, bad_tiles
from esrgan_plugin.engines.precision import BOUND_DB, candidates, choose_precision
from esrgan_plugin.engines.upscalers import clear_caches
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.options import UpscaleParams

CPU = torch.device("cpu")


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path / "cache"))
    clear_caches()
    return tmp_path / "cache"


def test_candidates_fastest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert candidates(CPU, RRDBNET) == ["int8", "bf16", "fp32"]
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert candidates(CPU, RRDBNET) == ["int8", "fp32"]  # emulated bf16 is slower than fp32


def test_the_choice_is_measured_within_the_bound_and_cached(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = tiny_rrdbnet()
    choice = choose_precision(net, RRDBNET, CPU, UpscaleOptions(device="cpu"))
    assert choice.how == "measured" and choice.crops == 6  # 4 calibration + 2 held-out crops
    tried = candidates(CPU, RRDBNET)[:-1]
    assert list(choice.tried) == tried[: len(choice.tried)]
    if choice.precision == "fp32":
        assert choice.psnr_db is None and all(
            isinstance(v, str) or v < BOUND_DB for v in choice.tried.values()
        )
    else:
        assert choice.psnr_db is not None and choice.psnr_db >= BOUND_DB
        assert choice.tried[choice.precision] == choice.psnr_db
    entries = list((cache_dir() / PRECISION_CHOICES.folder).glob("*.json"))
    assert len(entries) == 1

    def no_measuring(*_args: object) -> None:
        raise AssertionError("measured again")

    monkeypatch.setattr(precision_module, "measure", no_measuring)
    monkeypatch.setattr(precision_module, "measurement_crops", no_measuring)  # no photo decoded
    again = choose_precision(net, RRDBNET, CPU, UpscaleOptions(device="cpu"))
    assert again == choice  # the same record, so provenance and fingerprints do not change


def test_a_user_calibration_set_is_keyed_by_its_pixels(
    fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached choice for a folder of crops is found again, and measured anew once a file in
    the folder changes (the built-in set is keyed by its photos' names and release instead)."""
    from helpers import random_image

    from pipelines.io.images import write_image

    measured: list[str] = []
    real = precision_module.measure

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        measured.append("once")
        return real(*args, **kwargs)

    monkeypatch.setattr(precision_module, "measure", counted)
    folder = tmp_path / "crops"
    write_image(folder / "a.png", random_image(24, 24))
    options = UpscaleOptions(device="cpu", calibration=str(folder))
    net = tiny_rrdbnet()
    first = choose_precision(net, RRDBNET, CPU, options)
    assert choose_precision(net, RRDBNET, CPU, options) == first and len(measured) == 1
    write_image(folder / "a.png", 255 - random_image(24, 24), overwrite=True)
    choose_precision(net, RRDBNET, CPU, options)
    assert len(measured) == 2


def test_a_precision_below_the_bound_or_not_finite_is_rejected(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """int8 made to return NaN and bf16 made noisy (about 30 dB): fp32 is chosen, each reason kept."""
    real = precision_module._network

    def spoiled(module, arch, device, precision, options, parameters):  # type: ignore[no-untyped-def]
        network = real(module, arch, device, precision, options, parameters)
        if precision == "int8":
            return lambda x: network(x) * float("nan")
        if precision == "bf16":
            return lambda x: network(x) + 0.03 * torch.randn_like(network(x))
        return network

    monkeypatch.setattr(precision_module, "_network", spoiled)
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    choice = choose_precision(tiny_rrdbnet(), RRDBNET, CPU, UpscaleOptions(device="cpu"))
    assert choice.precision == "fp32" and choice.psnr_db is None
    assert choice.tried["int8"] == "rejected: non-finite output"
    assert isinstance(choice.tried["bf16"], float) and choice.tried["bf16"] < BOUND_DB


def test_a_precision_that_needed_the_fp16_guard_is_rejected(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = precision_module._network

    def guarded(module, arch, device, precision, options, parameters):  # type: ignore[no-untyped-def]
        network = real(module, arch, device, "fp32", options, parameters)
        if precision == "fp32":
            return network
        return GuardedNetwork(lambda x: network(x) * float("inf"), [("fp32", network)])

    monkeypatch.setattr(precision_module, "_network", guarded)
    choice = choose_precision(tiny_rrdbnet(), RRDBNET, CPU, UpscaleOptions(device="cpu"))
    assert choice.precision == "fp32"
    assert all(
        str(v).startswith("rejected: 6 crop(s) non-finite or black") for v in choice.tried.values()
    )


def test_when_measurement_fails_the_old_rule_applies(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("no kernel for this\nsecond line")

    monkeypatch.setattr(precision_module, "measure", broken)
    with caplog.at_level(logging.WARNING):
        choice = choose_precision(tiny_rrdbnet(), RRDBNET, CPU, UpscaleOptions(device="cpu"))
    assert choice.precision == "fp32" and choice.how == "fallback: no kernel for this"
    assert "precision auto: cannot measure (no kernel for this); using fp32" in caplog.text
    assert not list(fresh_cache.rglob("*.json"))  # a fallback is not cached


def test_the_upscaler_and_provenance_record_the_choice(fresh_cache: Path, tmp_path: Path) -> None:
    path = save_tiny(tmp_path / "m.safetensors")
    up = Upscaler(tiny_rrdbnet(), UpscaleOptions(device="cpu"))
    assert up.precision_choice is not None and up.precision == up.precision_choice.precision
    assert Upscaler(tiny_rrdbnet(), UpscaleOptions(precision="fp32")).precision_choice is None
    record = stages_module.upscale_provenance(UpscaleParams(model=str(path), device="cpu"))
    auto = record["precision_auto"]
    assert isinstance(auto, dict) and record["precision"] == auto["precision"]
    assert set(auto) == {"precision", "psnr_db", "tried", "how", "bound_db", "crops"}
    fixed = stages_module.upscale_provenance(UpscaleParams(model=str(path), precision="fp32"))
    assert "precision_auto" not in fixed and fixed["tta"] is False


# --------------------------------------------------------------------------- the fp16 guard


def test_bad_tiles_are_non_finite_or_black_for_a_visible_input() -> None:
    inputs = torch.full((4, 3, 4, 4), 0.5)
    inputs[3] = 0.0  # a dark input may give a black output
    outputs = torch.full((4, 3, 8, 8), 0.5)
    outputs[0, 0, 0, 0] = float("nan")
    outputs[1] = BLACK / 2
    outputs[3] = 0.0
    assert bad_tiles(inputs, outputs).tolist() == [True, True, False, False]


def test_only_bad_tiles_are_redone_in_the_first_good_fallback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, int]] = []

    def half(x: torch.Tensor) -> torch.Tensor:
        calls.append(("fp16", x.shape[0]))
        out = x.repeat_interleave(2, -1).repeat_interleave(2, -2)
        out[1] = float("inf")
        return out.half()

    def bf16(x: torch.Tensor) -> torch.Tensor:
        calls.append(("bf16", x.shape[0]))
        return torch.full((x.shape[0], 3, 8, 8), 0.25)

    def fp32(x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("bf16 was good enough")

    guard = GuardedNetwork(half, [("bf16", bf16), ("fp32", fp32)])
    x = torch.full((3, 3, 4, 4), 0.5)
    with caplog.at_level(logging.WARNING):
        out = guard(x)
        guard(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out[1] == 0.25).all() and (out[0] == 0.5).all() and (out[2] == 0.5).all()
    assert calls == [("fp16", 3), ("bf16", 1), ("fp16", 3), ("bf16", 1)] and guard.redone == 2
    warnings = [r for r in caplog.records if "redone in bf16" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()


def test_pytorch_engine_redoes_injected_fp16_nan_tiles_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The network is patched to return NaN under fp16 autocast (as an overflow does on CUDA):
    the pytorch engine's fp16 network gives the bf16 output instead, with one warning."""
    net = tiny_rrdbnet()
    real_forward = net.forward

    def overflowing(x: torch.Tensor, **kwargs: bool) -> torch.Tensor:
        out = real_forward(x, **kwargs)
        fp16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.float16
        return out * float("nan") if fp16 else out

    monkeypatch.setattr(net, "forward", overflowing)
    request = EngineRequest(net, RRDBNET, CPU, "fp16", channels_last=False)
    network = pytorch_engine.prepare(request)
    x = torch.rand(2, 3, 8, 8)
    with caplog.at_level(logging.WARNING):
        out = network(x)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = net(x, tail_strips=True).float()
    assert torch.isfinite(out).all() and torch.allclose(out, expected, atol=1e-6)
    assert "fp16 output of 2 of 2 tile(s) was non-finite or black; redone in bf16" in caplog.text
