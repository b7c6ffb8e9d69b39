"""The perception-distortion plane of a sweep (as the paper's Fig. 10): one point per alpha.

x is the distortion, RMSE on Y against the HR images (0 for the HR itself), or without HR the
LR-consistency RMSE; y is the perceptual index when computed, else NIQE. Lower-left is better.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from pipelines.api import atomic_target
from training.errors import TrainingError
from training.evaluation.sweep import SweepResult


@dataclass(frozen=True)
class Axes:
    """Which metric gives each axis, and their titles."""

    x_metric: str
    y_metric: str
    x_label: str
    y_label: str


@dataclass(frozen=True)
class Point:
    """One method's mean position on the plane."""

    method: str
    x: float
    y: float


def rmse_of_psnr(psnr_db: float) -> float:
    """RMSE on the 0..255 scale of a PSNR in dB (peak 255); 0 for identical images."""
    return 0.0 if math.isinf(psnr_db) else 255.0 * 10.0 ** (-psnr_db / 20.0)


def choose_axes(metrics: tuple[str, ...], has_hr: bool) -> Axes:
    """RMSE-Y vs HR (or LR-consistency RMSE) against PI (or NIQE)."""
    if "pi" in metrics:
        y_metric, y_label = "pi", "perceptual index (lower is better)"
    elif "niqe" in metrics:
        y_metric, y_label = "niqe", "NIQE (lower is better)"
    else:
        raise TrainingError("a sweep plot needs niqe (or pi) among the metrics")
    if has_hr and "psnr" in metrics:
        return Axes("psnr", y_metric, "RMSE on Y vs HR (lower is better)", y_label)
    if "lr-psnr" in metrics:
        return Axes("lr-psnr", y_metric, "LR-consistency RMSE, RGB (lower is better)", y_label)
    raise TrainingError("a sweep plot needs psnr (with --hr) or lr-psnr among the metrics")


def points(result: SweepResult, axes: Axes) -> list[Point]:
    """Mean (x, y) of each method: bicubic, every alpha, and HR when present (x = 0)."""
    out = []
    for method, evaluation in result.methods.items():
        ys = [row[axes.y_metric] for _, row in evaluation.rows if axes.y_metric in row]
        if method == "HR":
            xs = [0.0]
        else:
            xs = [
                rmse_of_psnr(row[axes.x_metric])
                for _, row in evaluation.rows
                if axes.x_metric in row
            ]
        if xs and ys:
            out.append(Point(method, sum(xs) / len(xs), sum(ys) / len(ys)))
    return out


def draw(result: SweepResult, axes: Axes) -> Any:
    """The figure: the alpha curve (one labelled point per alpha) with bicubic and HR.

    With HR images a second panel zooms in on the curve and bicubic (the HR sits far away at
    x = 0 and would squeeze them together).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    pts = points(result, axes)
    has_hr = any(p.method == "HR" for p in pts)
    figure = Figure(figsize=(11.0, 4.6) if has_hr else (6.4, 4.8), dpi=100)
    panels = figure.subplots(1, 2 if has_hr else 1, squeeze=False)[0]
    _draw_panel(panels[0], pts, axes, with_hr=True)
    if has_hr:
        _draw_panel(panels[1], pts, axes, with_hr=False)
        panels[1].set_title("zoom: interpolation and bicubic", fontsize=10)
    figure.suptitle(
        f"Perception-distortion: {_short(result.psnr_model)} (alpha 0) -> "
        f"{_short(result.gan_model)} (alpha 1)"
    )
    figure.tight_layout()
    return figure


def _draw_panel(ax: Any, pts: list[Point], axes: Axes, with_hr: bool) -> None:
    """One panel: the curve through the alphas in order, the reference points, labels.

    With HR on the panel the curve is small, so only its ends are labelled there.
    """
    curve = [p for p in pts if p.method.startswith("alpha ")]
    ax.plot(
        [p.x for p in curve],
        [p.y for p in curve],
        "o-",
        color="tab:blue",
        label="network interpolation",
        gid="alphas",
    )
    labelled = curve if not with_hr or len(curve) <= 3 else [curve[0], curve[-1]]
    for i, p in enumerate(labelled):
        ax.annotate(
            f"α={p.method.split()[1]}",
            (p.x, p.y),
            textcoords="offset points",
            xytext=(6, 2) if i % 2 == 0 else (-34, 2),  # alternate sides where points crowd
            fontsize=8,
        )
    references = (("bicubic", "s", "tab:gray"), ("HR", "*", "tab:green"))
    for method, marker, colour in references:
        ref = next((p for p in pts if p.method == method), None)
        if ref is None or (method == "HR" and not with_hr):
            continue
        ax.plot([ref.x], [ref.y], marker, color=colour, markersize=9, label=method, gid=method)
        ax.annotate(method, (ref.x, ref.y), textcoords="offset points", xytext=(5, -10), fontsize=8)
    ax.set_xlabel(axes.x_label)
    ax.set_ylabel(axes.y_label)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def _short(name: str) -> str:
    return os.path.basename(name) or name


def save_png(figure: Any, path: str | os.PathLike[str]) -> None:
    """Write the figure as PNG through a temporary file."""
    try:
        with atomic_target(path) as tmp:
            figure.savefig(tmp, format="png")
    except OSError as exc:
        raise TrainingError(f"{path}: cannot write the plot ({exc.strerror or exc})") from None
