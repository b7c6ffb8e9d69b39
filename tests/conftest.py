"""Shared fixtures: seeding, the ../shared folder, tiny models."""

from __future__ import annotations

import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Hypothesis budgets: "ci" (the default, what `make test` runs: few examples, the same ones every
# run) and "fuzz" (`make fuzz`: FUZZ_EXAMPLES examples per property, new ones every run).
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", max_examples=20, deadline=None, derandomize=True, suppress_health_check=_SLOW_OK
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=_SLOW_OK,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def shared_images() -> Path:
    folder = SHARED / "data" / "images"
    if not folder.is_dir():
        pytest.skip(
            f"sample images not found at {folder} (the shared/ folder sits beside the repo)"
        )
    return folder


@pytest.fixture(autouse=True, scope="session")
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Converted models go to a per-run folder, never the user's cache."""
    import os

    os.environ["ESRGAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(autouse=True, scope="session")
def _temporary_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every temporary file goes under this run's pytest folder, never loose in /tmp.

    Libraries make their own temporary folders and keep them: Dask's LocalCluster workers
    ``dask-scratch-space``, torchrun ``torchelastic_*``, torch.compile ``torchinductor_*``. So
    ``tempfile`` (this process), ``TMPDIR`` (child processes) and Dask's ``temporary-directory``
    point into the session's folder, which pytest prunes with its own.
    """
    folder = tmp_path_factory.mktemp("tmp")
    saved = tempfile.tempdir, os.environ.get("TMPDIR"), os.environ.get("DASK_TEMPORARY_DIRECTORY")
    tempfile.tempdir = str(folder)
    os.environ["TMPDIR"] = os.environ["DASK_TEMPORARY_DIRECTORY"] = str(folder)
    dask = sys.modules.get("dask")  # read its environment at import: if already imported, set it
    if dask is not None:
        dask.config.set({"temporary-directory": str(folder)})
    yield folder
    tempfile.tempdir = saved[0]
    for name, value in zip(("TMPDIR", "DASK_TEMPORARY_DIRECTORY"), saved[1:], strict=True):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests get no wall-clock limit: their time grows with the machine's load, and the
    global ``timeout`` (pyproject.toml) only guards the fast tests against hangs. A slow test
    that can hang (it waits on another process) sets its own ``@pytest.mark.timeout``."""
    for item in items:
        if item.get_closest_marker("slow") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(0))  # 0: no limit (pytest-timeout)
