"""Resource faults: writes that fail part-way (a full disk, simulated with RLIMIT_FSIZE in the
child process), read-only output folders and an unusable model cache. The old output (or last
good checkpoint) survives byte for byte, the error says what and where, and a re-run completes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import child_env, file_size_limit, one_line_error, run
from helpers import random_image, save_tiny, tiny_rrdbnet
from ncnn_files import write_rrdbnet

from pipelines.io.images import read_image, write_image

FULL = 2048
"""The file size limit that plays a full disk: metadata fits, pixels and weights do not."""


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save_tiny(tmp_path / "model.safetensors")


def test_full_disk_keeps_the_old_image_and_a_rerun_completes(tmp_path: Path, model: Path) -> None:
    src = write_image(tmp_path / "in.png", random_image(24, 24))
    out = tmp_path / "out" / "in.png"
    args = ("upscale", str(src), "-o", str(out), "--model", str(model), "--overwrite")
    assert run("esrgan", *args).returncode == 0
    good = out.read_bytes()
    out.write_bytes(good[:-1] + b"\0")  # an "old" output that differs from a new one
    old = out.read_bytes()
    failed = run("esrgan", *args, fsize=FULL)
    assert failed.returncode == 1
    one_line_error(failed, str(out), "File too large")
    assert out.read_bytes() == old and _files(out.parent) == ["in.png"]
    assert run("esrgan", *args).returncode == 0
    assert out.read_bytes() == good


@pytest.mark.parametrize("command", ["convert", "interpolate"])
def test_full_disk_keeps_the_old_model_export(tmp_path: Path, model: Path, command: str) -> None:
    out = tmp_path / "exports" / "m.safetensors"
    args = (
        ["convert", str(model)]
        if command == "convert"
        else ["interpolate", str(model), str(model), "--alpha", "0.5"]
    )
    args += ["-o", str(out), "--overwrite"]
    out.parent.mkdir()
    out.write_bytes(b"the previous export")
    failed = run("esrgan", *args, fsize=FULL)
    assert failed.returncode == 1
    one_line_error(failed, str(out), "cannot write model file", "File too large")
    assert out.read_bytes() == b"the previous export" and _files(out.parent) == ["m.safetensors"]
    assert run("esrgan", *args).returncode == 0
    assert run("esrgan", "info", str(out)).returncode == 0


SAVE_CHECKPOINT = """
import sys, torch
from pathlib import Path
from training.errors import TrainingError
from training.state import save_checkpoint
try:
    save_checkpoint(Path(sys.argv[1]), {"iteration": 7, "weights": torch.ones(100_000)})
except TrainingError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
"""


def test_full_disk_keeps_the_last_good_training_checkpoint(tmp_path: Path) -> None:
    from training.state import load_checkpoint, save_checkpoint

    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, {"iteration": 5, "weights": torch.zeros(3)})
    proc = subprocess.run(
        [sys.executable, "-c", SAVE_CHECKPOINT, str(path)],
        capture_output=True,
        text=True,
        env=child_env(),
        preexec_fn=file_size_limit(FULL),
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr
    message = proc.stderr.strip()
    assert "\n" not in message and str(path) in message and "last good one is kept" in message
    state = load_checkpoint(path)
    assert state["iteration"] == 5 and torch.equal(state["weights"], torch.zeros(3))
    assert _files(path.parent) == ["checkpoint.pt"]


def _zarr_pipeline(tmp_path: Path, model: Path, out: Path) -> Path:
    if not (tmp_path / "in.png").exists():
        write_image(tmp_path / "in.png", random_image(64, 48))
    path = tmp_path / f"{out.stem}.yaml"
    path.write_text(
        "steps:\n"
        f"  - {{id: src, uses: builtin.read, with: {{path: {tmp_path / 'in.png'}, chunk: 32}}}}\n"
        f"  - {{id: sr, uses: esrgan.upscale, with: {{model: {model}, tile: 0}}}}\n"
        f"  - {{id: out, uses: builtin.write, with: {{path: {out}}}}}\n"
    )
    return path


def _zarr_array(path: Path) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_array(str(path), mode="r")[...])


def test_full_disk_while_writing_zarr_chunks_then_resume(tmp_path: Path, model: Path) -> None:
    reference = tmp_path / "reference.zarr"
    assert (
        run(
            "pipelines", "run", str(_zarr_pipeline(tmp_path, model, reference)), "--quiet"
        ).returncode
        == 0
    )
    out = tmp_path / "out.zarr"
    pipeline = _zarr_pipeline(tmp_path, model, out)
    failed = run(
        "pipelines", "run", str(pipeline), "--quiet", "--set", "executor=threads", fsize=6144
    )
    assert failed.returncode == 1, failed.stderr
    one_line_error(failed, str(out), "cannot store the chunk", "File too large")
    resumed = run("pipelines", "run", str(pipeline), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(_zarr_array(out), _zarr_array(reference))


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """A folder nobody may write: a read-only tmpfs (as root, where mount works), else chmod 555."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("running as root where mount is not allowed: no way to make a read-only folder")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_read_only_output_folder(tmp_path: Path, model: Path) -> None:
    src = write_image(tmp_path / "in.png", random_image(16, 16))
    with read_only_folder(tmp_path / "ro") as folder:
        proc = run(
            "esrgan", "upscale", str(src), "-o", str(folder / "out.png"), "--model", str(model)
        )
        assert proc.returncode == 2  # refused before any work, as a bad output argument
        one_line_error(
            proc,
            str(folder / "out.png"),
            "Read-only file system" if os.geteuid() == 0 else "ermission",
        )
        assert _files(folder) == []
        proc = run("esrgan", "convert", str(model), "-o", str(folder / "m.safetensors"))
        assert proc.returncode == 1
        one_line_error(proc, str(folder / "m.safetensors"))


def test_unwritable_model_cache_is_not_an_error(tmp_path: Path) -> None:
    """An ncnn model converts in memory when its cache folder cannot be made (or is full)."""
    param = write_rrdbnet(tiny_rrdbnet(nf=4, nb=1, gc=2), tmp_path / "net.param")
    src = write_image(tmp_path / "in.png", random_image(16, 16))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    out = tmp_path / "out.png"
    proc = run(
        "esrgan",
        "upscale",
        str(src),
        "-o",
        str(out),
        "--model",
        str(param),
        ESRGAN_CACHE_DIR=str(blocker),
    )
    assert proc.returncode == 0, proc.stderr
    assert read_image(out).shape == (64, 64, 3)
    cache = tmp_path / "cache"
    proc = run("esrgan", "info", str(param), fsize=FULL, ESRGAN_CACHE_DIR=str(cache))
    assert proc.returncode == 0, proc.stderr
    assert not list(cache.rglob("*.safetensors")) and not list(cache.rglob("*.tmp"))
