"""bench/bench_speed.py on a tiny model: the size table with only some runs, and its peak line."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
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
    bench_speed.size_table(
        model, 24, 1, lambda: next(measured), only=[("pytorch", "fp32"), ("onednn", "fp32")]
    )
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    names = [row.split(" | ")[0].lstrip("| ") for row in rows[2:]]
    assert names[-2:] == ["pytorch fp32", "onednn fp32"]
    assert not any("default tiles" in n or "onnxruntime" in n or "OpenVINO" in n for n in names)
    # the higher of the peaks measured before and after the rounds
    assert "Matmul peak here: fp32 100 GFLOP/s, bf16 420 GFLOP/s" in out
    for row in rows[2:]:
        cells = row.strip("| ").split(" | ")
        assert float(cells[1]) >= 0 and cells[2].endswith("x") and cells[3].endswith("%")
        # the same network in every run: each output matches our fp32 one closely
        assert float(cells[4].removesuffix(" dB")) > 40
