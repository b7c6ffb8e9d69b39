"""``esrgan upscale --uncertainty MAP``: a per-pixel map of how unsure each output image is,
from the x8 self-ensemble's spread and, with ``--uncertainty-reference``, the disagreement with a
paired PSNR-oriented model (:mod:`esrgan_plugin.uncertainty`, docs/evaluation.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from esrgan_plugin.cli.jobs import Job, check_writable
from esrgan_plugin.errors import UsageError
from esrgan_plugin.options import UNCERTAINTY_GAIN

MAP_SUFFIXES = (".png", ".tif", ".tiff")
"""Formats that hold the 16-bit grey map."""


def add_uncertainty_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("uncertainty maps")
    group.add_argument(
        "--uncertainty",
        metavar="MAP",
        default=None,
        help="also write each image's uncertainty map: a 16-bit grey .png/.tif file for one "
        "input, else a folder (maps named as the outputs, as .png)",
    )
    group.add_argument(
        "--uncertainty-reference",
        metavar="MODEL",
        default=None,
        help="a PSNR-oriented model paired with a GAN model: the map also shows where they disagree",
    )
    group.add_argument(
        "--uncertainty-gain",
        type=float,
        default=UNCERTAINTY_GAIN,
        help=f"map value = min(1, gain x uncertainty) (default {UNCERTAINTY_GAIN:g})",
    )


def plan_maps(jobs: list[Job], args: argparse.Namespace) -> dict[Path, Path]:
    """Output path -> map path for every image job; refusals before any work."""
    if args.uncertainty is None:
        if args.uncertainty_reference is not None:
            raise UsageError("--uncertainty-reference needs --uncertainty MAP")
        return {}
    if args.uncertainty_gain <= 0:
        raise UsageError(f"--uncertainty-gain {args.uncertainty_gain}: must be above 0")
    if any(job.kind == "video" for job in jobs):
        raise UsageError("--uncertainty: maps are made for images, not videos")
    where = Path(args.uncertainty)
    single = len(jobs) == 1 and where.suffix.lower() in MAP_SUFFIXES
    if len(jobs) == 1 and where.suffix and not single and not where.is_dir():
        raise UsageError(f"--uncertainty {where}: expected one of {', '.join(MAP_SUFFIXES)}")
    if single:
        maps = {jobs[0].target: where}
    else:
        output = Path(args.output)
        maps = {
            job.target: where / job.target.relative_to(output).with_suffix(".png") for job in jobs
        }
    targets = {job.target for job in jobs}
    for path in maps.values():
        if path in targets:
            raise UsageError(f"--uncertainty {path}: would replace an upscaled output")
        if path.exists() and not args.overwrite:
            raise UsageError(f"{path}: uncertainty map exists; pass --overwrite to replace it")
    check_writable(where, where.parent if single else where)
    return maps
