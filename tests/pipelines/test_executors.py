"""Executors: a LocalCluster of processes gives the threads result; a dead scheduler fails fast."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import random_image, save_tiny

from pipelines.executors import ExecutorError, worker_thread_env
from pipelines.imageio import read_image, write_image
from pipelines.testing import run_text

PIPELINE = """
executor: {executor}
steps:
  - {{id: src, uses: builtin.read, with: {{path: "{root}/in/*.png"}}}}
  - {{id: clean, uses: builtin.denoise, with: {{method: median, size: 3}}}}
  - {{id: sr, uses: esrgan.upscale, with: {{model: "{root}/m.safetensors", tile: 16, halo: 4, device: cpu}}}}
  - {{id: out, uses: builtin.write, with: {{path: "{root}/{tag}/{{name}}.png"}}}}
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    save_tiny(tmp_path / "m.safetensors")
    write_image(tmp_path / "in" / "a.png", random_image(20, 18))
    write_image(tmp_path / "in" / "b.png", random_image(9, 11, 4, dtype=np.uint16))
    return tmp_path


def test_processes_executor_matches_threads(root: Path) -> None:
    threads = run_text(PIPELINE.format(executor="threads", root=root, tag="t"), entry_points=True)
    processes = run_text(
        PIPELINE.format(executor="{type: processes, workers: 2, threads_per_worker: 1}", root=root, tag="p"),
        entry_points=True,
    )
    assert processes.executor == "processes" and len(processes.written) == 2
    for a, b in zip(threads.written, processes.written, strict=True):
        np.testing.assert_array_equal(read_image(a), read_image(b))


def test_unanswering_scheduler_fails_quickly_with_a_clear_error(root: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound but not listening: nothing answers
        port = sock.getsockname()[1]
        executor = f"{{address: 'tcp://127.0.0.1:{port}', connect_timeout: 1.5}}"
        start = time.monotonic()
        with pytest.raises(ExecutorError, match=rf"cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 1.5 s"):
            run_text(PIPELINE.format(executor=executor, root=root, tag="x"), entry_points=True)
    assert time.monotonic() - start < 10
    assert not (root / "x").exists()


def test_worker_thread_env_shares_the_cores() -> None:
    env = worker_thread_env(10_000)
    assert env["OMP_NUM_THREADS"] == "1" and set(env) == {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}
