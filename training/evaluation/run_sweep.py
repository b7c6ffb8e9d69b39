"""``esrgan sweep`` and the ``esrgan.sweep`` stage: a sweep run end to end into a report folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from training.evaluation.report import FILES, write_report
from training.evaluation.run_eval import (
    EvalUsageError,
    add_eval_arguments,
    add_model_arguments,
    choose_metrics,
    context_for,
)
from training.evaluation.sweep import Progress, SweepParams, run_sweep


def sweep_metrics(params: SweepParams) -> tuple[tuple[str, ...], list[str]]:
    """The run's metrics, always with NIQE and a distortion measure so the plot can be drawn."""
    has_hr = params.hr is not None
    metrics, notes = choose_metrics(params.metrics, has_hr, True, params.ma_model is not None)
    extra = [m for m in ("niqe", "psnr" if has_hr else "lr-psnr") if m not in metrics]
    if "pi" in metrics and "niqe" in extra:
        extra.remove("niqe")
    return (*metrics, *extra), notes


def sweep_report(params: SweepParams, progress: Progress | None = None) -> Path:
    """Run the sweep and write its report; returns the path of index.html."""
    if params.hr is None and params.lr is None:
        raise EvalUsageError("a sweep needs --hr HR_DIR or --lr LR_DIR")
    out = Path(params.output)
    if out.exists() and not out.is_dir():
        raise EvalUsageError(f"{out}: the report folder is a file")
    existing = [name for name in FILES if (out / name).exists()]
    if existing and not params.overwrite:
        raise EvalUsageError(
            f"{out}: holds a report already ({existing[0]}); pass --overwrite to replace it"
        )
    metrics, notes = sweep_metrics(params)
    crop = params.crop_border
    from esrgan_plugin.models.loading import load_model

    if crop is None:
        crop = load_model(params.psnr_model).scale
    context = context_for(
        argparse.Namespace(niqe_params=params.niqe_params, ma_model=params.ma_model), crop, metrics
    )
    notes = [f"crop border: {crop} px", *notes]
    result = run_sweep(params, metrics, context, notes, progress)
    return write_report(result, out)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sweep`` subcommand to the ``esrgan`` argument parser."""
    parser = subparsers.add_parser(
        "sweep",
        help="perception-distortion sweep: interpolate two models at every alpha, score, report",
    )
    parser.add_argument("--psnr-model", required=True, help="the PSNR-oriented model (alpha 0)")
    parser.add_argument("--gan-model", required=True, help="the GAN model (alpha 1)")
    parser.add_argument(
        "--alphas", default="0:1:0.1", help="start:stop:step (stop included) or a list like 0,0.5,1"
    )
    parser.add_argument("--hr", default=None, help="HR images (LR made from them unless --lr)")
    parser.add_argument("--lr", default=None, help="LR images (paired with --hr if given)")
    parser.add_argument("-o", "--output", required=True, help="report folder")
    parser.add_argument("--crop-size", type=int, default=96, help="side of the report's crops")
    parser.add_argument("--crops-per-image", type=int, default=3, help="crops per image")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    add_eval_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``esrgan sweep``."""
    from tqdm import tqdm

    fields = set(SweepParams.model_fields)
    try:
        params = SweepParams(**{k: v for k, v in vars(args).items() if k in fields})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "--" + "-".join(str(p) for p in error["loc"]).replace("_", "-")
        raise EvalUsageError(f"{where}: {error['msg']}") from None
    with tqdm(desc="sweep", unit="img", disable=args.quiet or not sys.stderr.isatty()) as bar:

        def on_progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        index = sweep_report(params, on_progress)
    print(f"wrote {index.parent}/{{{','.join(FILES)}}}")
    return 0
