"""Scoring SR images against their HR/LR partners: size checks, per-image rows and the mean."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from training.evaluation.measures import MEASURES, MeasureContext, compute, to_8bit_colour
from training.evaluation.niqe import NiqeUndefined


@dataclass(frozen=True)
class Sample:
    """One SR image to score, with its HR and/or LR partner where known (any bit depth)."""

    name: str
    sr: np.ndarray
    hr: np.ndarray | None = None
    lr: np.ndarray | None = None
    sr_label: str = ""
    hr_label: str = ""
    lr_label: str = ""


@dataclass
class Evaluation:
    """Per-image metric values (in request order), errors as one-line messages, and notes."""

    metrics: tuple[str, ...]
    rows: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def mean(self) -> dict[str, float]:
        """Mean of each metric over the scored images (NaN when none was scored)."""
        out = {}
        for name in self.metrics:
            values = [row[name] for _, row in self.rows if name in row]
            out[name] = float(np.mean(values)) if values else math.nan
        return out

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: metrics, rows, the mean row, errors and notes."""
        return {
            "metrics": list(self.metrics),
            "images": [{"image": name, **_clean(row)} for name, row in self.rows],
            "mean": _clean(self.mean()),
            "errors": list(self.errors),
            "notes": list(self.notes),
        }


def _clean(values: dict[str, float]) -> dict[str, float | str | None]:
    """JSON has no inf or NaN: identical images get "inf", missing values null."""
    out: dict[str, float | str | None] = {}
    for key, value in values.items():
        if math.isnan(value):
            out[key] = None
        elif math.isinf(value):
            out[key] = "inf" if value > 0 else "-inf"
        else:
            out[key] = value
    return out


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def check_sizes(sample: Sample) -> None:
    """Refuse an SR image whose HR differs in size, or whose LR is not an integer scale of it."""
    sr = sample.sr
    if sample.hr is not None and sample.hr.shape[:2] != sr.shape[:2]:
        hr = sample.hr
        ratio = f"{hr.shape[1] / sr.shape[1]:.3g}x{hr.shape[0] / sr.shape[0]:.3g}"
        raise ValueError(
            f"{sample.sr_label or sample.name} is {_size(sr)} but its HR "
            f"{sample.hr_label or ''} is {_size(hr)} (HR/SR = {ratio}; they must be the same size)"
        )
    if sample.lr is not None:
        lr = sample.lr
        sx, sy = sr.shape[1] / lr.shape[1], sr.shape[0] / lr.shape[0]
        if sx != sy or sx != round(sx) or sx < 1:
            raise ValueError(
                f"{sample.sr_label or sample.name} is {_size(sr)} but its LR "
                f"{sample.lr_label or ''} is {_size(lr)}: that implies a scale of "
                f"{sx:.4g} x {sy:.4g}, not one whole factor"
            )


def score(
    sample: Sample,
    metrics: Sequence[str],
    context: MeasureContext,
    notes: list[str] | None = None,
) -> dict[str, float]:
    """Every requested metric of one sample (metrics needing a missing partner are skipped).

    NIQE (and the perceptual index built on it) has no value for an image too small for its
    96x96 blocks, or too flat: left out for that image, with a note added to ``notes`` (once
    per image and metric), instead of failing the whole evaluation or sweep.
    """
    check_sizes(sample)
    sr = to_8bit_colour(sample.sr)
    hr = None if sample.hr is None else to_8bit_colour(sample.hr)
    lr = None if sample.lr is None else to_8bit_colour(sample.lr)
    if hr is not None and (sr.ndim != hr.ndim):
        raise ValueError(
            f"{sample.sr_label or sample.name} is {'grey' if sr.ndim == 2 else 'colour'} but its "
            f"HR is {'grey' if hr.ndim == 2 else 'colour'}"
        )
    values: dict[str, float] = {}
    for name in metrics:
        needs = MEASURES[name].needs
        if (needs == "hr" and hr is None) or (needs == "lr" and lr is None):
            continue
        try:
            values[name] = compute(name, sr, context, hr=hr, lr=lr)
        except NiqeUndefined as exc:
            note = f"{sample.name}: {name} left out ({exc})"
            if notes is not None and note not in notes:
                notes.append(note)
        except ValueError as exc:
            raise ValueError(f"{sample.sr_label or sample.name}: {name}: {exc}") from None
    return values
