"""Two processes writing the same output: one proceeds, the other is refused at once with a clear
error (the output lock), and the result equals a single run's.

The first process is paused (SIGSTOP) once it holds its lock while the second one runs, so the
two always overlap however fast or loaded the machine is; it is then resumed (SIGCONT).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from clitools import one_line_error, run, start
from helpers import random_image, save_tiny

from pipelines.io.images import read_image, write_image
from pipelines.io.locks import lock_path, output_lock


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, Path]:
    """A slow-enough model and a folder of images, so a run lasts a few seconds."""
    model = save_tiny(tmp_path / "model.safetensors", nf=16, nb=2, gc=8)
    folder = tmp_path / "in"
    for i in range(6):
        write_image(folder / f"img{i}.png", random_image(48 + i, 40))
    return model, folder


def _wait_for(path: Path, proc: object, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@contextlib.contextmanager
def paused(proc: object) -> Iterator[None]:
    os.kill(proc.pid, signal.SIGSTOP)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # type: ignore[attr-defined]


def _images(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p) for p in sorted(folder.glob("*.png"))}


def test_two_upscales_into_the_same_folder(tmp_path: Path, batch: tuple[Path, Path]) -> None:
    model, folder = batch
    single = tmp_path / "single"
    assert (
        run("esrgan", "upscale", str(folder), "-o", str(single), "--model", str(model)).returncode
        == 0
    )
    out = tmp_path / "out"
    first = start("esrgan", "upscale", str(folder), "-o", str(out), "--model", str(model))
    _wait_for(lock_path(out), first)
    with paused(first):
        second = run("esrgan", "upscale", str(folder), "-o", str(out), "--model", str(model))
    assert second.returncode == 1
    one_line_error(second, str(out), f"another process (pid {first.pid})")
    assert first.wait(timeout=600) == 0, first.communicate()
    assert _images(out).keys() == _images(single).keys()
    for name, image in _images(single).items():
        np.testing.assert_array_equal(_images(out)[name], image)
    assert not lock_path(out).exists()


def test_upscale_refused_while_a_pipeline_writes_the_same_file(tmp_path: Path) -> None:
    """Both commands use the same lock file for the same output path."""
    model = save_tiny(tmp_path / "model.safetensors")
    src = write_image(tmp_path / "in.png", random_image(16, 16))
    out = tmp_path / "out.png"
    with output_lock(out):
        proc = run("esrgan", "upscale", str(src), "-o", str(out), "--model", str(model))
    assert proc.returncode == 1
    one_line_error(proc, "another process")
    assert not out.exists()


def _folder_pipeline(tmp_path: Path, model: Path, folder: Path, pattern: str) -> Path:
    """A pipeline upscaling every image of ``folder`` into the path pattern ``pattern``."""
    path = tmp_path / "folder-job.yaml"
    path.write_text(
        "steps:\n"
        f"  - {{id: src, uses: builtin.read, with: {{path: {folder}}}}}\n"
        f"  - {{id: sr, uses: esrgan.upscale, with: {{model: {model}, tile: 0}}}}\n"
        f"  - {{id: out, uses: builtin.write, with: {{path: '{pattern}'}}}}\n"
    )
    return path


def test_a_folder_upscale_and_a_pattern_pipeline_exclude_each_other(
    tmp_path: Path, batch: tuple[Path, Path]
) -> None:
    """``esrgan upscale -o out/`` and ``builtin.write`` to ``out/{name}.png`` lock the same
    folder, in either order: the second is refused at once and writes nothing."""
    model, folder = batch
    out = tmp_path / "out"
    job = _folder_pipeline(tmp_path, model, folder, f"{out}/{{name}}.png")
    first = start("esrgan", "upscale", str(folder), "-o", f"{out}/", "--model", str(model))
    _wait_for(lock_path(out), first)
    with paused(first):
        second = run("pipelines", "run", str(job), "--quiet")
    assert second.returncode == 1
    one_line_error(second, str(out), f"another process (pid {first.pid}) is writing this output")
    assert first.wait(timeout=600) == 0, first.communicate()
    upscaled = _images(out)
    assert len(upscaled) == 6

    other = tmp_path / "other"
    job = _folder_pipeline(tmp_path, model, folder, f"{other}/{{name}}.png")
    first = start("pipelines", "run", str(job), "--quiet")
    _wait_for(lock_path(other), first)
    with paused(first):
        second = run("esrgan", "upscale", str(folder), "-o", f"{other}/", "--model", str(model))
    assert second.returncode == 1
    one_line_error(second, str(other), f"another process (pid {first.pid}) is writing this output")
    assert first.wait(timeout=600) == 0, first.communicate()
    assert _images(other).keys() == upscaled.keys()


def _pipeline(tmp_path: Path, model: Path, src: Path, out: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        "steps:\n"
        f"  - {{id: src, uses: builtin.read, with: {{path: {src}, chunk: 32}}}}\n"
        f"  - {{id: sr, uses: esrgan.upscale, with: {{model: {model}, tile: 0}}}}\n"
        f"  - {{id: out, uses: builtin.write, with: {{path: {out}}}}}\n"
    )
    return path


def test_two_pipeline_runs_of_the_same_zarr_job(tmp_path: Path, batch: tuple[Path, Path]) -> None:
    import zarr

    model, _ = batch
    src = write_image(tmp_path / "big.png", random_image(160, 128))
    reference = tmp_path / "reference.zarr"
    job = _pipeline(tmp_path, model, src, reference)
    assert run("pipelines", "run", str(job), "--quiet").returncode == 0
    out = tmp_path / "out.zarr"
    job = _pipeline(tmp_path, model, src, out)
    first = start("pipelines", "run", str(job), "--quiet")
    _wait_for(lock_path(out), first)
    with paused(first):
        second = run("pipelines", "run", str(job), "--quiet")
    assert second.returncode == 1
    one_line_error(second, str(out), f"another process (pid {first.pid})")
    assert first.wait(timeout=600) == 0, first.communicate()
    np.testing.assert_array_equal(
        zarr.open_array(str(out), mode="r")[...], zarr.open_array(str(reference), mode="r")[...]
    )


def test_two_conversions_into_the_model_cache_leave_one_valid_entry(tmp_path: Path) -> None:
    """Two processes started together on a fresh cache (whether their conversions overlap depends
    on timing; the atomic rename makes every order safe): one whole entry, no temporary file."""
    from helpers import tiny_rrdbnet
    from ncnn_files import write_rrdbnet

    from esrgan_plugin.cache import CACHE_ENV, MODELS, file_sha256, read_conversion

    param = write_rrdbnet(tiny_rrdbnet(nf=4, nb=1, gc=2), tmp_path / "net.param")
    cache = tmp_path / "cache"
    env = {**os.environ, CACHE_ENV: str(cache)}
    procs = [start("esrgan", "info", str(param), env=env) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.communicate()
    entries = sorted(cache.rglob("*"))
    files = [p for p in entries if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".safetensors", entries
    key = MODELS.key(file_sha256([param, param.with_suffix(".bin")]))
    assert read_conversion(files[0], key) is not None
