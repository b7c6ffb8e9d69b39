"""bench/bench_gpu.py: without CUDA it says so and exits 0; its code paths run on the CPU (smoke)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH / "bench_gpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    return module


def test_without_cuda_one_line_and_exit_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "no CUDA GPU available" in out[0]
    assert bench.main(["--device", "cpu"]) == 2  # the CPU is only for --smoke


def test_cpu_smoke_runs_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    assert bench.main(["--device", "cpu", "--smoke"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and "skipped" not in out
    for title in (
        "#### Precision on cpu",
        "#### Memory layout and cudnn.benchmark",
        "#### Batched tiles",
        "#### Out-of-memory back-off",
        "#### torch.compile (eager)",
        "#### Dask, one worker per GPU",
    ):
        assert title in out
    assert "date: 20" in out and "CPU: " in out and "smoke run" in out
    assert "| fp32 | " in out and "| inf dB | 0.000 |" in out  # fp32 against itself
    assert "| bf16 | " in out
    # the back-off halves until the simulated budget holds, and matches a plain tiled run
    assert "| whole-image side doubled until the allocator failed | ran 64, failed at 128 |" in out
    assert "tiles tried | whole -> 32 -> 16 |" in out
    assert "| max abs diff vs a plain run at tile 16 (x255) | 0.000 |" in out
    assert "| 1 | CUDA_VISIBLE_DEVICES=: cpu |" in out and "| yes |" in out


def test_a_failing_section_is_reported_and_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench()

    def broken(_: object) -> None:
        raise RuntimeError("layout exploded\nsecond line")

    monkeypatch.setitem(bench.RUNNERS, "layout", broken)
    args = ["--device", "cpu", "--smoke", "--skip", "compile,dask,oom,tiles"]
    assert bench.main(args) == 1
    out = capsys.readouterr().out
    assert "(layout: FAILED: RuntimeError: layout exploded)" in out
    assert "#### Precision on cpu" in out and "(dask: skipped)" in out
    with pytest.raises(SystemExit, match="unknown sections"):
        bench.main(["--device", "cpu", "--smoke", "--skip", "warp"])


def test_cluster_without_dask_cuda_pins_one_gpu_per_worker() -> None:
    """The fallback for GPUs without dask-cuda: one Nanny per GPU with CUDA_VISIBLE_DEVICES."""
    import os

    bench = load_bench()
    with bench.worker_cluster(2) as (address, kind, client):
        assert address.startswith("tcp://")
        if kind.startswith("dask-cuda"):
            pytest.skip("dask-cuda is installed; its LocalCUDACluster is used instead")
        assert kind == "Nanny per GPU with CUDA_VISIBLE_DEVICES"
        visible = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        assert sorted(visible.values()) == ["0", "1"]
        threads = client.run(lambda dask_worker: dask_worker.state.nthreads)
        assert set(threads.values()) == {1}
