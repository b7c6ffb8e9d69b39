"""Resumable Zarr jobs: a run killed with SIGKILL resumes, computing only the chunks it had not finished."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import stage_plugins
import zarr
from helpers import random_image, save_tiny

from pipelines.cli import main
from pipelines.errors import PipelineError
from pipelines.io.zarr_publish import work_path
from pipelines.runner.progress import ProgressLine
from pipelines.testing import run_text

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
RUNNER = """
import sys
sys.path[:0] = [{tests!r}, {here!r}]
import stage_plugins
from pipelines.testing import run_text
run_text(open(sys.argv[1]).read(), stage_plugins, entry_points=True)
"""
JOB = """
steps:
  - {{id: src, uses: builtin.read, with: {{path: "{root}/in.zarr"}}}}
  - {{id: sr, uses: esrgan.upscale, with: {{model: "{root}/m.safetensors", halo: 20, tile: 0, device: cpu}}}}
  - {{id: log, uses: test.slow, with: {{log: "{log}", seconds: {seconds}}}}}
  - {{id: out, uses: builtin.write, with: {{path: "{out}"}}}}
"""
BLOCKS = 16


def finished(out: Path) -> int:
    """Chunks the completion record marks as stored: in the work path while the output is
    unfinished, in the output once it is published."""
    where = out if out.exists() else Path(work_path(str(out)))
    record = where / ".done" / "c"
    return (
        sum(1 for p in record.rglob("*") if p.is_file() and not p.name.endswith(".partial"))
        if record.exists()
        else 0
    )


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    save_tiny(tmp_path / "m.safetensors")
    z = zarr.create_array(
        str(tmp_path / "in.zarr"), shape=(80, 80, 3), chunks=(20, 20, 3), dtype="uint8"
    )
    z[...] = random_image(80, 80)
    return tmp_path


def run_and_kill(root: Path, job: str, chunks: int = 3) -> int:
    """Run ``job`` in a subprocess, SIGKILL it once ``chunks`` chunks are recorded; the chunks done."""
    (root / "job.yaml").write_text(job)
    script = root / "run.py"
    script.write_text(RUNNER.format(tests=str(TESTS), here=str(Path(__file__).parent)))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root / "job.yaml")],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while (
            finished(root / "out.zarr") < chunks
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = finished(root / "out.zarr")
    assert chunks <= done < BLOCKS
    return done


def test_a_killed_run_resumes_with_only_the_missing_chunks(root: Path) -> None:
    log = root / "calls.log"
    job = JOB.format(root=root, log=log, seconds=0.25, out=root / "out.zarr")
    done = run_and_kill(root, job)
    before = lines(log)

    progress = io.StringIO()
    summary = run_text(job, stage_plugins, entry_points=True, progress=progress)  # resumed
    assert summary.written == (str(root / "out.zarr"),)
    assert lines(log) - before == BLOCKS - done  # only the chunks the killed run had not recorded
    assert finished(root / "out.zarr") == BLOCKS
    said = progress.getvalue()
    assert f"resuming: {done} of {BLOCKS} chunks already done, {BLOCKS - done} to do" in said
    assert f"\r[{' ' * 24}] 0/{BLOCKS - done} outputs" in said  # drawn before the first chunk ends

    run_text(job.replace("out.zarr", "ref.zarr"), stage_plugins, entry_points=True)  # uninterrupted
    resumed = zarr.open_array(str(root / "out.zarr"), mode="r")[...]
    np.testing.assert_array_equal(resumed, zarr.open_array(str(root / "ref.zarr"), mode="r")[...])


def test_a_model_swapped_between_a_kill_and_the_rerun_is_never_mixed_in(root: Path) -> None:
    log = root / "calls.log"
    out = root / "out.zarr"
    job = JOB.format(root=root, log=log, seconds=0.25, out=out)
    run_and_kill(root, job)
    save_tiny(root / "m.safetensors")  # other weights at the same path (same size, same name)
    with pytest.raises(PipelineError, match="output exists, made by another job"):
        run_text(job, stage_plugins, entry_points=True)
    before = lines(log)
    replace = job.replace(f'path: "{out}"', f'path: "{out}", overwrite: true')
    run_text(replace, stage_plugins, entry_points=True)
    assert lines(log) - before == BLOCKS  # every chunk recomputed with the new model
    run_text(job.replace("out.zarr", "ref.zarr"), stage_plugins, entry_points=True)
    np.testing.assert_array_equal(
        zarr.open_array(str(out), mode="r")[...],
        zarr.open_array(str(root / "ref.zarr"), mode="r")[...],
    )


def test_cli_restart_recomputes_and_progress_counts_chunks(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = root / "copy.yaml"
    job.write_text(
        textwrap.dedent(f"""
    steps:
      - {{id: src, uses: builtin.read, with: {{path: "{root}/in.zarr"}}}}
      - {{id: out, uses: builtin.write, with: {{path: "{root}/copy.zarr"}}}}
    """)
    )
    assert main(["run", str(job)]) == 0
    assert f"{BLOCKS}/{BLOCKS} outputs | 100% Completed" in capsys.readouterr().err
    assert main(["run", str(job)]) == 0  # finished: nothing to compute
    said = capsys.readouterr()
    assert "outputs" not in said.err
    assert f"copy.zarr: already complete ({BLOCKS} of {BLOCKS} chunks); nothing to do" in said.err
    assert "nothing to do, already complete" in said.out and "wrote" not in said.out
    assert main(["run", str(job), "--restart"]) == 0
    assert f"{BLOCKS}/{BLOCKS} outputs" in capsys.readouterr().err
    np.testing.assert_array_equal(
        zarr.open_array(str(root / "copy.zarr"))[...], zarr.open_array(str(root / "in.zarr"))[...]
    )


def test_progress_line_shows_count_rate_and_eta() -> None:
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock, out = Clock(), __import__("io").StringIO()
    line = ProgressLine(256, out, interval=0.0, clock=clock)
    clock.now = 10.0
    line.advance(32)
    assert out.getvalue().endswith("32/256 outputs | 12% Completed | 3.20/s | ETA 1m10s | 10.0s")
