"""Shared fixtures: seeding, the ../shared folder, tiny models."""

from __future__ import annotations

import os
import random
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
