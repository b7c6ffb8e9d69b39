"""``esrgan eval``: score SR folders (or a model's output) with PSNR/SSIM/NIQE/LR consistency.

Two modes:

* ``esrgan eval SR... [--hr HR] [--lr LR]``: SR files paired with HR / LR files by the rules
  in :mod:`training.evaluation.pairing`. Without ``--hr`` only the HR-free metrics are computed.
* ``esrgan eval --model M (--lr LR | --hr HR | both)``: upscale every LR image with the model and
  score the result; with only ``--hr`` the LR is made from the HR (cropped to a multiple of the
  scale) with the MATLAB-compatible bicubic.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from esrgan_plugin.errors import EsrganError, UsageError
from pipelines.api import DEFAULT_MAX_PIXELS, PipelineError, imresize, read_image
from training.evaluation.evaluate import Evaluation, Sample, score
from training.evaluation.measures import DEFAULT_MEASURES, MEASURES, MeasureContext, parse_measures
from training.evaluation.niqe import load_niqe_model
from training.evaluation.pairing import Found, find_images, reference_index
from training.evaluation.perceptual_index import NO_MA_MODEL, ma_scorer
from training.evaluation.tables import csv_text, text_table, write_text

PAIRING_HELP = """pairing: each SR file's path relative to its folder is matched in the same
sub-folder of --hr / --lr by stem (any extension), else by the longest stem it starts with
followed by _, - or . (baboon_x4.png -> baboon.png). Unpaired or ambiguous files, size
mismatches and unreadable files are one-line errors; the rest is still scored (exit code 1)."""


class EvalUsageError(UsageError):
    """Arguments of ``esrgan eval`` / ``esrgan sweep`` that do not fit together (exit code 2)."""


Job = Callable[[], Sample]
"""Builds one sample when called (reads, pairs, upscales); raises a one-line error if it cannot."""


@dataclass(frozen=True)
class Plan:
    """The images to score, by name, and what the run can compute."""

    jobs: list[tuple[str, Job]]
    has_hr: bool
    has_lr: bool


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``eval`` and ``sweep``: metrics, crop, NIQE model, Ma model."""
    parser.add_argument(
        "--metrics",
        default=None,
        help=f"comma-separated, of {', '.join(MEASURES)} (default {','.join(DEFAULT_MEASURES)})",
    )
    parser.add_argument(
        "--crop-border",
        type=int,
        default=None,
        help="pixels removed at each border before scoring (default: the model's scale with "
        "--model, else 0)",
    )
    parser.add_argument(
        "--niqe-params",
        default=None,
        help="NIQE pristine model (.npz like BasicSR's, or MATLAB's .mat); default: the standard one shipped",
    )
    parser.add_argument(
        "--ma-model",
        default=None,
        help="Ma et al.'s model file (pyiqa's NRQM_model.mat) to compute the perceptual index "
        "(metric pi); without it NIQE is reported alone",
    )
    parser.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Upscaling options for the modes that run a model."""
    parser.add_argument("--tile", type=int, default=None, help="tile size in LR pixels; 0 = whole")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "auto"])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval`` subcommand to the ``esrgan`` argument parser."""
    parser = subparsers.add_parser(
        "eval",
        help="score SR images (PSNR/SSIM/NIQE/LR consistency), or a model on LR/HR folders",
        description="Score SR images (or a model's output on LR/HR folders) with PSNR/SSIM on Y "
        "or RGB, NIQE and LR consistency; per-image rows and a mean row.",
        epilog=PAIRING_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sr", nargs="*", metavar="SR", help="SR image files, globs or folders")
    parser.add_argument("--hr", default=None, help="folder (or file/glob) of ground-truth images")
    parser.add_argument("--lr", default=None, help="folder (or file/glob) of low-resolution inputs")
    parser.add_argument(
        "--model", default=None, help="upscale --lr (or --hr made LR) with this model"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the results as JSON")
    output.add_argument("--csv", default=None, metavar="FILE", help="also write the table as CSV")
    add_eval_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run)


# --------------------------------------------------------------------------- planning


def _reader(max_pixels: int) -> Callable[[object], np.ndarray]:
    return lambda path: read_image(path, max_pixels)  # type: ignore[arg-type]


def plan_folders(args: argparse.Namespace) -> Plan:
    """Jobs for SR files paired with --hr / --lr files."""
    read = _reader(args.max_pixels)
    sr_files = find_images(args.sr)
    if not sr_files:
        raise EvalUsageError(f"no images found in {' '.join(args.sr)}")
    hr_index = reference_index(args.hr, "HR") if args.hr else None
    lr_index = reference_index(args.lr, "LR") if args.lr else None

    def job(found: Found) -> Job:
        def build() -> Sample:
            hr_path = hr_index.partner(found.relative, found.path) if hr_index else None
            lr_path = lr_index.partner(found.relative, found.path) if lr_index else None
            return Sample(
                name=str(found.relative),
                sr=read(found.path),
                hr=None if hr_path is None else read(hr_path),
                lr=None if lr_path is None else read(lr_path),
                sr_label=str(found.path),
                hr_label=str(hr_path or ""),
                lr_label=str(lr_path or ""),
            )

        return build

    return Plan(
        [(str(f.relative), job(f)) for f in sr_files], args.hr is not None, args.lr is not None
    )


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` cropped at the bottom/right to a multiple of ``scale`` (BasicSR's mod crop)."""
    return image[: image.shape[0] // scale * scale, : image.shape[1] // scale * scale]


def make_lr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR, cropped HR): the HR cut to a multiple of ``scale``, downscaled by MATLAB's bicubic."""
    hr = crop_to_multiple(hr, scale)
    if hr.shape[0] == 0 or hr.shape[1] == 0:
        raise ValueError(f"an image smaller than the scale {scale} cannot be downscaled")
    return imresize(hr, 1 / scale), hr


LoadPair = Callable[[], tuple[np.ndarray, "np.ndarray | None", str, str]]
"""Loads (LR, HR or None, LR label, HR label) for one input of a model run."""


def input_pairs(
    lr_dir: str | None, hr_dir: str | None, scale: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[tuple[str, LoadPair]]:
    """(name, loader) per LR image (HR paired by the rules), or per HR image (LR made from it)."""
    read = _reader(max_pixels)
    if lr_dir:
        hr_index = reference_index(hr_dir, "HR") if hr_dir else None

        def from_lr(found: Found) -> LoadPair:
            def load() -> tuple[np.ndarray, np.ndarray | None, str, str]:
                hr_path = hr_index.partner(found.relative, found.path) if hr_index else None
                hr = None if hr_path is None else read(hr_path)
                return read(found.path), hr, str(found.path), str(hr_path or "")

            return load

        return [(str(f.relative), from_lr(f)) for f in find_images([lr_dir])]
    if not hr_dir:
        raise EvalUsageError("give --lr LR_DIR, --hr HR_DIR or both")

    def from_hr(found: Found) -> LoadPair:
        def load() -> tuple[np.ndarray, np.ndarray | None, str, str]:
            lr, hr = make_lr(read(found.path), scale)
            return lr, hr, f"{found.path} (bicubic x1/{scale})", str(found.path)

        return load

    return [(str(f.relative), from_hr(f)) for f in find_images([hr_dir])]


def plan_model(args: argparse.Namespace) -> tuple[Plan, int]:
    """Jobs that upscale each LR image with ``--model`` (and the model's scale)."""
    from esrgan_plugin.inference import UpscaleOptions, Upscaler
    from esrgan_plugin.models.loading import load_model

    if args.sr:
        raise EvalUsageError("give SR images or --model, not both")
    if not (args.lr or args.hr):
        raise EvalUsageError("--model needs --lr LR_DIR, --hr HR_DIR or both")
    model = load_model(args.model)
    upscaler = Upscaler(
        model, UpscaleOptions(tile=args.tile, precision=args.precision, device=args.device)
    )
    pairs = input_pairs(args.lr, args.hr, model.scale, args.max_pixels)
    if not pairs:
        raise EvalUsageError(f"no images found in {args.lr or args.hr}")

    def job(load: LoadPair, name: str) -> Job:
        def build() -> Sample:
            lr, hr, lr_label, hr_label = load()
            return Sample(
                name, upscaler.upscale(lr), hr, lr, f"{name} (x{model.scale})", hr_label, lr_label
            )

        return build

    return Plan(
        [(name, job(load, name)) for name, load in pairs], args.hr is not None, True
    ), model.scale


# --------------------------------------------------------------------------- metrics


def choose_metrics(
    requested: str | None, has_hr: bool, has_lr: bool, has_ma: bool
) -> tuple[tuple[str, ...], list[str]]:
    """The metrics this run computes, and notes on what was left out and why."""
    explicit = requested is not None
    try:
        metrics = parse_measures(requested) if requested is not None else DEFAULT_MEASURES
    except ValueError as exc:
        raise EvalUsageError(f"--metrics: {exc}") from None
    notes: list[str] = []
    kept: list[str] = []
    for name in metrics:
        needs = MEASURES[name].needs
        if needs == "hr" and not has_hr:
            if explicit:
                raise EvalUsageError(f"metric {name} needs HR images: pass --hr HR_DIR")
            notes.append(f"{name}: no --hr given, left out")
            continue
        if needs == "lr" and not has_lr:
            if explicit:
                raise EvalUsageError(f"metric {name} needs LR images: pass --lr LR_DIR")
            notes.append(f"{name}: no --lr given, left out")
            continue
        if name == "pi" and not has_ma:
            notes.append(f"pi: {NO_MA_MODEL}")
            if "niqe" not in metrics:
                kept.append("niqe")
            continue
        kept.append(name)
    return tuple(dict.fromkeys(kept)), notes


def context_for(
    args: argparse.Namespace, crop_border: int, metrics: tuple[str, ...]
) -> MeasureContext:
    """Crop, NIQE pristine model and Ma scorer for a run."""
    if crop_border < 0:
        raise EvalUsageError(f"--crop-border must be >= 0, got {crop_border}")
    ma = ma_scorer(args.ma_model, crop_border) if "pi" in metrics and args.ma_model else None
    return MeasureContext(crop_border, load_niqe_model(args.niqe_params), ma)


# --------------------------------------------------------------------------- running


USER_ERRORS = (ValueError, EsrganError, PipelineError)


def evaluate_jobs(
    jobs: list[tuple[str, Job]],
    metrics: tuple[str, ...],
    context: MeasureContext,
    progress: bool,
    desc: str = "eval",
) -> Evaluation:
    """Score every job; a job that fails adds a one-line error (printed at once) and is skipped."""
    from tqdm import tqdm

    evaluation = Evaluation(metrics)
    for name, build in tqdm(jobs, desc=desc, unit="img", disable=not progress):
        try:
            evaluation.rows.append((name, score(build(), metrics, context, evaluation.notes)))
        except USER_ERRORS as exc:
            evaluation.errors.append(str(exc))
            tqdm.write(f"esrgan: error: {exc}", file=sys.stderr)
    return evaluation


def iter_rows(evaluation: Evaluation) -> Iterator[tuple[list[str], dict[str, float]]]:
    """Per-image rows then the mean row, as (key cells, values)."""
    for name, values in evaluation.rows:
        yield [name], values
    count = len(evaluation.rows)
    yield [f"mean ({count} image{'' if count == 1 else 's'})"], evaluation.mean()


def run(args: argparse.Namespace) -> int:
    """Entry point of ``esrgan eval``."""
    if args.model:
        plan, scale = plan_model(args)
    else:
        if not args.sr:
            raise EvalUsageError("give SR images to score, or --model with --lr/--hr")
        plan, scale = plan_folders(args), 0
    crop = args.crop_border if args.crop_border is not None else scale
    metrics, notes = choose_metrics(
        args.metrics, plan.has_hr, plan.has_lr, args.ma_model is not None
    )
    context = context_for(args, crop, metrics)
    show = not args.quiet and sys.stderr.isatty()
    evaluation = evaluate_jobs(plan.jobs, metrics, context, show)
    evaluation.notes.extend([f"crop border: {crop} px", *notes])
    rows = list(iter_rows(evaluation))
    if args.json:
        print(json.dumps(evaluation.as_dict(), indent=2, allow_nan=False))
    else:
        print(text_table(["image"], rows, metrics))
        for note in evaluation.notes:
            print(f"note: {note}")
    if args.csv:
        write_text(args.csv, csv_text(["image"], rows, metrics))
    if evaluation.errors:
        print(
            f"esrgan: error: {len(evaluation.errors)} of {len(plan.jobs)} images could not be scored",
            file=sys.stderr,
        )
        return 1
    return 0
