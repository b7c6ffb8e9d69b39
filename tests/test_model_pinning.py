"""Models on long-lived clusters: every task runs the weights the job was planned with.

A job pins each model to its file's SHA-256 when it is planned; workers cache models by that
hash and check the file when they load it. Replacing a model file with one of the same size
and modification time (``cp -p``) is then seen by every later job, and a file replaced while a
job runs is refused rather than mixed in.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import random_image, save_tiny

from esrgan_plugin import UpscaleOptions, Upscaler, load_model
from esrgan_plugin.engines import upscalers
from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.options import UpscaleParams
from esrgan_plugin.stages import stage_specs, upscale, upscale_pin
from pipelines.api import map_stage, read_image, read_provenance, write_image
from pipelines.testing import run_text


@pytest.fixture
def same_size_models(tmp_path: Path) -> tuple[Path, Path]:
    """Two models of one configuration (files of the same size), given the same mtime."""
    a = save_tiny(tmp_path / "a.safetensors")
    b = save_tiny(tmp_path / "b.safetensors", nf=8, gc=4)
    import torch

    from esrgan_plugin.models.loading import save_model

    net = load_model(b).module
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(-1.0)
    save_model(b, net)
    assert a.stat().st_size == b.stat().st_size
    os.utime(b, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns))
    return a, b


def _expected(model: Path, image: np.ndarray) -> np.ndarray:
    return Upscaler(load_model(model), UpscaleOptions(tile=0, engine="torch")).upscale(image)


def test_planning_pins_the_model_and_a_replaced_file_is_refused(
    tmp_path: Path, same_size_models: tuple[Path, Path]
) -> None:
    a, b = same_size_models
    model = tmp_path / "model.safetensors"
    shutil.copy2(a, model)
    pinned = upscale_pin(UpscaleParams(model=str(model), tile=0))
    assert pinned.model_sha256 == upscalers.model_sha256(str(model))
    image = random_image(12, 10)
    np.testing.assert_array_equal(upscale(image, pinned), _expected(a, image))
    shutil.copy2(b, model)  # what `cp -p b model` does: same size, same mtime
    upscalers.clear_caches()  # a new worker process (an old one keys by the pinned hash anyway)
    with pytest.raises(CheckpointError, match="changed since the job was planned"):
        upscale(image, pinned)
    with pytest.raises(CheckpointError, match="not the"):
        upscale_pin(UpscaleParams(model=str(model), model_sha256=pinned.model_sha256))


def test_dask_blocks_carry_the_pinned_hash(
    tmp_path: Path, same_size_models: tuple[Path, Path]
) -> None:
    import dask.array as da

    a, _ = same_size_models
    spec = next(s for s in stage_specs() if s.id == "esrgan.upscale")
    image = random_image(24, 20)
    lazy = map_stage(da.from_array(image, chunks=(12, 10, 3)), spec, {"model": str(a), "halo": 8})
    import cloudpickle

    payload = cloudpickle.dumps(dict(lazy.__dask_graph__()))
    assert upscalers.model_sha256(str(a)).encode() in payload


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cluster(tmp_path: Path) -> object:
    """A real ``dask scheduler`` and one ``dask worker`` process, as a user starts them."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(tmp_path / "dask")}
    scheduler = subprocess.Popen(
        [*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--no-dashboard",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from distributed import Client

        with Client(address, timeout=120) as client:
            client.wait_for_workers(1, timeout=300)
        yield address
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_long_lived_cluster_runs_the_replaced_model_and_records_its_hash(
    tmp_path: Path, same_size_models: tuple[Path, Path], cluster: str
) -> None:
    a, b = same_size_models
    model = tmp_path / "model.safetensors"
    shutil.copy2(a, model)
    source = write_image(tmp_path / "in.png", random_image(16, 14))
    results = []
    for run, weights in enumerate((a, b)):
        shutil.copy2(weights, model)  # `cp -p`: same size and mtime as the file it replaces
        out = tmp_path / f"out{run}.png"
        run_text(
            f"executor: {{address: '{cluster}'}}\n"
            "steps:\n"
            f"  - {{id: src, uses: builtin.read, with: {{path: '{source}'}}}}\n"
            f"  - {{id: sr, uses: esrgan.upscale, with: {{model: '{model}', tile: 0, engine: torch}}}}\n"
            f"  - {{id: out, uses: builtin.write, with: {{path: '{out}'}}}}\n",
            entry_points=True,
        )
        results.append(out)
        time.sleep(0.01)
    image = read_image(source)
    for out, weights in zip(results, (a, b), strict=True):
        np.testing.assert_array_equal(read_image(out), _expected(weights, image))
        record = read_provenance(out)
        assert record is not None
        facts = record["steps"][-1]["provenance"]["model"]
        assert facts["sha256"] == upscalers.file_sha256([weights])
