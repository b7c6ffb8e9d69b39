"""Shared fixtures: seeding, the ../shared folder, tiny models."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


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
