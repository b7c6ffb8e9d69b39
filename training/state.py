"""Training state on disk: one atomic checkpoint file, readable with ``weights_only=True``.

The learning rate is a pure function of the iteration (``lr_at``), so no scheduler object is
saved; RNG state is stored as a tensor. Everything else is tensors and plain containers.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from training.errors import TrainingError

CHECKPOINT_NAME = "checkpoint.pt"


def lr_at(iteration: int, base_lr: float, milestones: Sequence[int], gamma: float) -> float:
    """Step schedule: ``base_lr * gamma ** (milestones passed)`` (the paper's halving)."""
    return base_lr * gamma ** bisect_right(sorted(milestones), iteration)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash never leaves a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint safely (tensors and plain containers only)."""
    if not path.is_file():
        raise TrainingError(f"{path}: no checkpoint to resume from (run without --resume first)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise TrainingError(f"{path}: unreadable or unsafe checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or "iteration" not in state:
        raise TrainingError(f"{path}: not a training checkpoint of this project")
    return state
