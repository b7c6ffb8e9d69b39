"""Training state on disk: one atomic checkpoint file, readable with ``weights_only=True``.

The learning rate is a pure function of the iteration (``lr_at``), so no scheduler object is
saved; RNG state is stored as a tensor. Everything else is tensors and plain containers.
"""

from __future__ import annotations

import os
import pickle
import shutil
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipelines.api import atomic_target
from training.errors import TrainingError

CHECKPOINT_NAME = "checkpoint.pt"


def lr_at(iteration: int, base_lr: float, milestones: Sequence[int], gamma: float) -> float:
    """Step schedule: ``base_lr * gamma ** (milestones passed)`` (the paper's halving)."""
    return base_lr * gamma ** bisect_right(sorted(milestones), iteration)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash never leaves a half-written checkpoint."""
    try:
        with atomic_target(path) as tmp:
            torch.save(state, tmp)
    except OSError as exc:
        raise TrainingError(
            f"{path}: cannot write checkpoint ({exc.strerror or exc}); the last good one is kept"
        ) from None
    except RuntimeError as exc:  # torch's zip writer reports a short write (full disk) this way
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingError(
            f"{path}: cannot write checkpoint: the write stopped part-way (disk full or over a "
            f"file size limit?) ({first}); the last good one is kept"
        ) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint safely (tensors and plain containers only)."""
    if not path.is_file():
        raise TrainingError(f"{path}: no checkpoint to resume from (run without --resume first)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise TrainingError(
            f"{path}: unreadable or unsafe checkpoint ({str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(state, dict) or "iteration" not in state:
        raise TrainingError(f"{path}: not a training checkpoint of this project")
    return state


CHECKPOINTS_DIR = "checkpoints"
"""Folder of the last ``keep_checkpoints`` checkpoints (hard links of ``checkpoint.pt``)."""

SNAPSHOTS_DIR = "snapshots"
"""Folder of generator snapshots written every ``snapshot_every`` iterations."""


def keep_checkpoint(run_dir: Path, iteration: int, keep: int) -> None:
    """Keep ``checkpoint.pt`` of ``iteration`` in ``checkpoints/`` and prune all but the last ``keep``."""
    if keep <= 1:
        return
    folder = run_dir / CHECKPOINTS_DIR
    folder.mkdir(exist_ok=True)
    kept = folder / f"checkpoint_{iteration:08d}.pt"
    kept.unlink(missing_ok=True)
    try:
        os.link(run_dir / CHECKPOINT_NAME, kept)  # no second copy on disk
    except OSError:
        shutil.copyfile(run_dir / CHECKPOINT_NAME, kept)
    for old in sorted(folder.glob("checkpoint_*.pt"))[:-keep]:
        old.unlink(missing_ok=True)


def snapshot_path(run_dir: Path, iteration: int) -> Path:
    """Where the generator snapshot of ``iteration`` goes."""
    return run_dir / SNAPSHOTS_DIR / f"generator_{iteration:08d}.safetensors"
