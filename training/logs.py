"""Training logs: a CSV file always, TensorBoard event files when tensorboard is installed."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOG_NAME = "log.csv"


class MetricsLog:
    """Rows of ``iteration`` + named figures; a resumed run drops rows after its checkpoint."""

    def __init__(self, run_dir: Path, resume_from: int = 0) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / LOG_NAME
        self.rows: list[dict[str, float | int]] = (
            _read_rows(self.path, keep_until=resume_from) if resume_from else []
        )
        self._tensorboard = _open_tensorboard(run_dir / "tensorboard", purge_step=resume_from + 1)
        self._flush()

    def write(self, iteration: int, figures: dict[str, float]) -> None:
        self.rows.append({"iteration": iteration, **figures})
        self._flush()
        if self._tensorboard is not None:
            for name, value in figures.items():
                self._tensorboard.add_scalar(name, value, iteration)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()

    def _flush(self) -> None:
        columns: list[str] = ["iteration"]
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)


def _read_rows(path: Path, keep_until: int) -> list[dict[str, float | int]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [
            {k: _number(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]
    return [r for r in rows if r.get("iteration", 0) <= keep_until]


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _open_tensorboard(folder: Path, purge_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.debug("tensorboard not installed: logging to CSV only")
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)
