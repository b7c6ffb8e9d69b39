"""Evaluation results as a text table, CSV and JSON files (written atomically)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from pipelines.api import atomic_target
from training.errors import TrainingError
from training.evaluation.measures import MEASURES

_DIGITS = {"ssim": 4, "ssim-rgb": 4}


def format_value(metric: str, value: float | None) -> str:
    """A metric value as printed: 4 decimals for SSIM, 2 for dB figures, 3 for NIQE / PI."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    digits = _DIGITS.get(metric, 2 if MEASURES[metric].unit == "dB" else 3)
    return f"{value:.{digits}f}"


def header(metric: str) -> str:
    """Column title with its unit and the better direction, e.g. ``psnr (dB, ^)``."""
    m = MEASURES[metric]
    arrow = "higher better" if m.higher_is_better else "lower better"
    return f"{metric} ({m.unit + ', ' if m.unit else ''}{arrow})"


def text_table(
    keys: Sequence[str],
    rows: Sequence[tuple[Sequence[str], dict[str, float]]],
    metrics: Sequence[str],
) -> str:
    """A Markdown table: the key columns, then one column per metric."""
    lines = [
        "| " + " | ".join([*keys, *(header(m) for m in metrics)]) + " |",
        "| " + " | ".join(["---"] * len(keys) + ["---:"] * len(metrics)) + " |",
    ]
    for key_values, values in rows:
        cells = [*key_values, *(format_value(m, values.get(m)) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_text(
    keys: Sequence[str],
    rows: Sequence[tuple[Sequence[str], dict[str, float]]],
    metrics: Sequence[str],
) -> str:
    """CSV with the key columns then the metrics at full precision (empty where not computed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*keys, *metrics])
    for key_values, values in rows:
        writer.writerow([*key_values, *(_raw(values.get(m)) for m in metrics)])
    return buffer.getvalue()


def _raw(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return repr(float(value)) if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file; one-line error if it cannot."""
    out = Path(path)
    try:
        with atomic_target(out) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TrainingError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return out


def write_json(path: str | os.PathLike[str], data: object) -> Path:
    """``data`` as indented JSON (no NaN or inf: callers clean them first)."""
    return write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
