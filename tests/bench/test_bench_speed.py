"""bench/bench_speed.py on a tiny model: the size table with only some runs, and its peak line;
without bf16 arithmetic, its bf16 runs, peak and peer left out."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch
from helpers import tiny_rrdbnet

from esrgan_plugin.models.loading import load_model, save_model

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_size_table_times_only_the_runs_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    # the bench defaults OMP_WAIT_POLICY at import: put this process's value back afterwards
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    bench_speed = importlib.import_module("bench_speed")
    model = load_model(save_model(tmp_path / "tiny.safetensors", tiny_rrdbnet()))
    measured = iter([{"fp32": 1e11, "bf16": 4e11}, {"fp32": 0.9e11, "bf16": 4.2e11}])
    probed: list[str] = []
    bench_speed.size_table(
        model,
        24,
        2,
        lambda: next(measured),
        only=[("pytorch", "fp32"), ("onednn", "fp32")],
        probe=lambda kind: probed.append(kind) or (1.2e11 if len(probed) == 3 else 0.5e11),
    )
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    names = [row.split(" | ")[0].lstrip("| ") for row in rows[2:]]
    assert names[-2:] == ["pytorch fp32", "onednn fp32"]
    assert probed == ["fp32"] * 2 * len(names)  # the peak next to every timed run, 2 rounds
    assert not any("default tiles" in n or "onnxruntime" in n or "OpenVINO" in n for n in names)
    # the highest of the samples: before and after the rounds, and next to each run
    samples = 2 + len(probed)
    assert f"fp32 120 GFLOP/s (the highest of {samples} samples, 50-120)" in out
    assert "bf16 420 GFLOP/s (the highest of 2 samples, 400-420)" in out
    for row in rows[2:]:
        cells = row.strip("| ").split(" | ")
        assert float(cells[1]) >= 0 and cells[2].endswith("x") and cells[3].endswith("%")
        # the same network in every run: each output matches our fp32 one closely
        assert float(cells[4].removesuffix(" dB")) > 40


def _bench_speed(monkeypatch: pytest.MonkeyPatch, native: bool) -> ModuleType:
    """bench_speed imported, with ``native`` as this CPU's bf16 arithmetic (one switch for every
    bench script: bench/native_bf16.py)."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    bench_speed = importlib.import_module("bench_speed")
    monkeypatch.setattr(
        importlib.import_module("native_bf16"), "cpu_has_native_bf16", lambda: native
    )
    return bench_speed


@pytest.mark.parametrize("native", [True, False])
def test_bf16_peak_and_command_table_only_where_the_cpu_computes_bf16(
    native: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench_speed = _bench_speed(monkeypatch, native)
    measured: list[torch.dtype] = []
    monkeypatch.setattr(bench_speed, "matmul_peak", lambda dtype: measured.append(dtype) or 1e11)
    peaks = bench_speed.measure_peaks()
    assert measured == ([torch.float32, torch.bfloat16] if native else [torch.float32])
    assert sorted(peaks) == (["bf16", "fp32"] if native else ["fp32"])
    assert bench_speed.cli_precisions(None) == (["fp32", "bf16"] if native else ["fp32"])
    assert bench_speed.cli_precisions(["bf16"]) == ["bf16"]  # asked for: it runs
    assert ("Warning" in capsys.readouterr().out) is not native
    line = bench_speed.peak_line({kind: [value] for kind, value in peaks.items()})
    assert ("bf16: none (no bf16 arithmetic)" in line) is not native


def test_without_bf16_arithmetic_the_size_table_leaves_bf16_out_and_says_so_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench_speed = _bench_speed(monkeypatch, native=False)
    monkeypatch.setattr(
        bench_speed, "RUNS", [("pytorch", "fp32"), ("pytorch", "bf16"), ("onednn", "bf16")]
    )
    monkeypatch.setattr(bench_speed, "peer_entries", lambda model, x: ([], []))
    model = load_model(save_model(tmp_path / "tiny.safetensors", tiny_rrdbnet()))
    bench_speed.size_table(model, 24, 1, lambda: {"fp32": 1e11}, probe=lambda kind: 1e11)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    names = [row.split(" | ")[0].lstrip("| ") for row in rows[2:]]
    assert "pytorch fp32" in names and not any("bf16" in n for n in names)
    assert "bf16: none (no bf16 arithmetic)" in out
    assert out.count("bf16 left out: this CPU has no bf16 arithmetic") == 1


def test_without_bf16_arithmetic_openvinos_bf16_peer_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("onnxscript")
    _bench_speed(monkeypatch, native=False)
    bench_inference = importlib.import_module("bench_inference")
    peers = importlib.import_module("peers")
    asked: list[tuple[str, ...]] = []

    def prepare(*args: object) -> tuple[list[object], list[str]]:
        asked.append(tuple(args[4]))  # type: ignore[arg-type]
        return [], []

    monkeypatch.setattr(peers, "prepare_peers", prepare)
    entries, skipped = bench_inference.peer_entries(None, torch.zeros(1, 3, 8, 8))
    assert entries == [] and asked == [tuple(k for k in peers.PEER_KINDS if k != "ov-bf16")]
    assert skipped == [importlib.import_module("native_bf16").BF16_LEFT_OUT]


def test_the_matmul_peak_takes_the_faster_of_pytorch_and_openvino(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("openvino")
    bench_speed = _bench_speed(monkeypatch, native=True)
    assert bench_speed.openvino_matmul(torch.float32, 64, 1) is not None
    assert bench_speed.matmul_peak(torch.float32, side=64, repeats=2) > 0
    compiled = bench_speed.openvino_matmul(torch.float32, 64, torch.get_num_threads())
    calls: list[int] = []
    monkeypatch.setattr(
        bench_speed, "openvino_matmul", lambda *a: lambda: calls.append(1) or compiled()
    )
    bench_speed.matmul_peak(torch.float32, side=64, repeats=3)
    assert calls == [1, 1, 1]  # timed beside PyTorch's, best of the repeats
