"""SIGINT and SIGTERM in the middle of work: finished outputs are kept and whole, the one being
written is discarded (no partial or temporary file), the exit code says which signal (130, 143),
and the work can be finished: ``--skip-existing`` for a batch, a plain re-run for a Zarr job."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from clitools import run, start
from helpers import random_image, save_tiny

from pipelines.io.images import read_image, write_image
from pipelines.io.zarr_publish import work_path

COUNT = 8


def _wait_until(ready: object, proc: object, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not ready():  # type: ignore[operator]
        assert proc.poll() is None, proc.communicate()  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the run never got that far"
        time.sleep(0.02)


def _interrupt(proc: object, signum: int) -> None:
    """Pause the process where it is, queue ``signum``, and let it go on to handle it."""
    os.kill(proc.pid, signal.SIGSTOP)  # type: ignore[attr-defined]
    os.kill(proc.pid, signum)  # type: ignore[attr-defined]
    os.kill(proc.pid, signal.SIGCONT)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_batch_keeps_finished_images(tmp_path: Path, signum: int, code: int) -> None:
    model = save_tiny(tmp_path / "model.safetensors", nf=16, nb=2, gc=8)
    folder = tmp_path / "in"
    for i in range(COUNT):
        write_image(folder / f"img{i}.png", random_image(40, 32 + i))
    out = tmp_path / "out"
    args = ("upscale", str(folder), "-o", str(out), "--model", str(model))
    proc = start("esrgan", *args)
    _wait_until(lambda: (out / "img0.png").exists(), proc)
    _interrupt(proc, signum)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == code, stderr
    assert f"interrupted ({signal.Signals(signum).name})" in stderr and "Traceback" not in stderr
    written = sorted(out.iterdir())
    assert all(p.suffix == ".png" and not p.name.startswith(".") for p in written), written
    assert 1 <= len(written) < COUNT
    for path in written:  # each one whole: decodes to the x4 size of its input
        h, w = read_image(folder / path.name).shape[:2]
        assert read_image(path).shape == (4 * h, 4 * w, 3)

    if signum != signal.SIGINT:
        return  # the re-run rule is the same whatever stopped the batch: checked once
    refused = run("esrgan", *args)
    assert refused.returncode == 2 and "output exists" in refused.stderr
    finished = run("esrgan", *args, "--skip-existing")
    assert finished.returncode == 0, finished.stderr
    left = COUNT - len(written)
    assert f"wrote {left} image{'' if left == 1 else 's'} to" in finished.stdout
    reference = tmp_path / "reference"
    assert run("esrgan", *args[:3], str(reference), *args[4:]).returncode == 0
    for path in sorted(reference.iterdir()):
        np.testing.assert_array_equal(read_image(out / path.name), read_image(path))


def _job(tmp_path: Path, model: Path, src: Path, out: Path) -> Path:
    path = tmp_path / f"{out.stem}.yaml"
    path.write_text(
        "steps:\n"
        f"  - {{id: src, uses: builtin.read, with: {{path: {src}, chunk: 32}}}}\n"
        f"  - {{id: sr, uses: esrgan.upscale, with: {{model: {model}, tile: 0}}}}\n"
        f"  - {{id: out, uses: builtin.write, with: {{path: {out}}}}}\n"
    )
    return path


def test_interrupted_zarr_job_resumes(tmp_path: Path) -> None:
    import zarr

    model = save_tiny(tmp_path / "model.safetensors", nf=16, nb=2, gc=8)
    src = write_image(tmp_path / "big.png", random_image(192, 160))
    out = tmp_path / "out.zarr"
    job = _job(tmp_path, model, src, out)
    proc = start("pipelines", "run", str(job), "--quiet")
    work = Path(work_path(str(out)))  # where an output is written until it is complete
    record = work / ".done" / "c"  # a file per chunk whose store has finished
    _wait_until(
        lambda: (
            record.is_dir()
            and any(p.is_file() and not p.name.endswith(".partial") for p in record.rglob("*"))
        ),
        proc,
    )
    _interrupt(proc, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr
    assert "interrupted (SIGTERM)" in stderr and "Traceback" not in stderr
    assert not out.exists()  # not published: no reader takes it for a finished array
    done = np.asarray(zarr.open_array(str(work / ".done"), mode="r")[...])
    assert 0 < done.sum() < done.size  # some chunks finished, some left

    resumed = run("pipelines", "run", str(job), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "reference.zarr"
    assert (
        run("pipelines", "run", str(_job(tmp_path, model, src, reference)), "--quiet").returncode
        == 0
    )
    np.testing.assert_array_equal(
        zarr.open_array(str(out), mode="r")[...], zarr.open_array(str(reference), mode="r")[...]
    )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_training_writes_a_checkpoint_and_resumes(
    tmp_path: Path, signum: int, code: int
) -> None:
    from training.state import load_checkpoint

    config = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny-psnr.yaml"
    run_dir = tmp_path / "run"
    args = ("train", str(config), "--output-dir", str(run_dir), "--quiet")
    proc = start("esrgan", *args, "--iterations", "100000")
    log = run_dir / "log.csv"
    _wait_until(lambda: log.is_file() and len(log.read_text().splitlines()) > 2, proc)
    _interrupt(proc, signum)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == code, stderr
    name = signal.Signals(signum).name
    assert f"stopped by {name}" in stderr and "checkpoint written" in stderr, stderr
    stopped_at = load_checkpoint(run_dir / "checkpoint.pt")["iteration"]
    assert 0 < stopped_at < 100000
    resumed = run("esrgan", *args, "--resume", "--iterations", str(stopped_at + 2))
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run_dir / "checkpoint.pt")["iteration"] == stopped_at + 2
