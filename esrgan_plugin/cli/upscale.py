"""``esrgan upscale``: images and videos (files, globs or folders) in, upscaled files out.

Everything that can be refused is refused before the model loads (:mod:`.jobs`); one writer
per output (a lock on the output file or folder); images keep their colour profile and EXIF
and carry a provenance record unless ``--no-metadata``; videos go through the host's resumable
segment job (:mod:`.video`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic

from esrgan_plugin.cli import session
from esrgan_plugin.cli.fast_start import fast_upscaler, remember
from esrgan_plugin.cli.jobs import Job, plan_jobs
from esrgan_plugin.cli.uncertainty import add_uncertainty_arguments, plan_maps
from esrgan_plugin.cli.video import add_video_arguments, upscale_video
from esrgan_plugin.engines.registry import check_precision_on
from esrgan_plugin.errors import EsrganError, InferenceError, UsageError
from esrgan_plugin.options import OPTION_NAMES, UpscaleParams
from pipelines.api import (
    DEFAULT_MAX_PIXELS,
    QUALITY_RANGE,
    PipelineError,
    add_model_arguments,
    describe_error,
    given_values,
    make_provenance,
    output_lock,
    read_image_with_meta,
    write_image,
)

EXIT_ERROR = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``upscale`` to the ``esrgan`` subcommands."""
    up = sub.add_parser("upscale", help="upscale images and videos: files, globs or folders")
    up.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image or video files, globs or folders"
    )
    up.add_argument("-o", "--output", required=True, help="output file (one input file) or folder")
    add_model_arguments(
        up,
        UpscaleParams,
        only=[
            "model",
            *OPTION_NAMES,
            "interpolate_with",
            "alpha",
            "model_sha256",
            "interpolate_with_sha256",
        ],
    )
    up.add_argument(
        "--ext", default=None, help="image format for folder outputs (default: the input's)"
    )
    up.add_argument(
        "--quality",
        type=_quality,
        default=None,
        metavar="N",
        help="JPEG and WebP outputs: encoder quality, 1-100 (default: JPEG 95, WebP lossless); "
        "PNG, TIFF and BMP are lossless",
    )
    up.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images"
    )
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    up.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave outputs that exist alone and process only the others (re-running an interrupted batch)",
    )
    up.add_argument(
        "--no-metadata",
        action="store_true",
        help="write no colour profile, EXIF or provenance record into the outputs",
    )
    add_uncertainty_arguments(up)
    add_video_arguments(up)
    up.set_defaults(func=cmd_upscale)


def _quality(text: str) -> int:
    """``--quality``'s value: an integer in :data:`QUALITY_RANGE` (else argparse's usage error)."""
    low, high = QUALITY_RANGE
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text!r}")
    return value


def upscale_params(args: argparse.Namespace) -> UpscaleParams:
    """The stage parameters the options given on the command line describe (bad values: exit 2)."""
    try:
        params = UpscaleParams(**given_values(args, UpscaleParams.model_fields))
    except pydantic.ValidationError as exc:
        raise UsageError(describe_error(exc, flags=True)) from None
    device = params.device.split(":")[0]
    if device != "auto" and params.precision != "auto":
        try:  # refused before torch or the model loads
            check_precision_on(device, params.precision)
        except InferenceError as exc:
            raise UsageError(str(exc)) from None
    return params


def cmd_upscale(args: argparse.Namespace) -> int:
    from esrgan_plugin.models.names import resolve_model_path

    params = upscale_params(args)
    for name in (params.model, params.interpolate_with):
        if name is not None:  # a misspelt name is reported before torch loads
            resolve_model_path(name)
    jobs = plan_jobs(args.inputs, args.output, args.ext, args.overwrite or args.skip_existing)
    if args.skip_existing and not args.overwrite:
        jobs = [job for job in jobs if not job.target.exists()]
        if not jobs:
            print(f"nothing to do: every output in {args.output} exists")
            return 0
    maps = plan_maps(jobs, args)
    if args.uncertainty_reference is not None:
        resolve_model_path(args.uncertainty_reference)
    with output_lock(args.output):  # a second run writing the same output is refused
        return _upscale(args, params, jobs, maps)


def _upscale(
    args: argparse.Namespace, params: UpscaleParams, jobs: list[Job], maps: dict[Path, Path]
) -> int:
    images_only = not maps and all(job.kind == "image" for job in jobs)
    fast = fast_upscaler(params) if images_only else None
    if fast is not None:  # cached OpenVINO graphs, run without importing torch
        upscaler, step = fast
        session.leave_to_exit(upscaler)  # freeing its compiled graphs took 0.2 s
    else:
        upscaler, step = _usual_upscaler(params, remember_it=images_only)
    command: list[str] = args.command_line
    failures = 0
    images = [job for job in jobs if job.kind == "image"]
    maker = _map_maker(args, params, step, command) if maps else None
    for error in _run_images(images, upscaler, args, step, command, maps, maker):
        if len(jobs) == 1 or args.debug:
            raise error
        failures += 1
    for job in (job for job in jobs if job.kind == "video"):
        record = None if args.no_metadata else _record(job, step, command)
        scale = float(params.outscale or upscaler.scale)
        locked = len(jobs) == 1  # the command holds the lock of this very file
        try:
            upscale_video(job.source, job.target, params, args, step, record, scale, locked)
        except (EsrganError, PipelineError) as exc:
            if len(jobs) == 1 or args.debug:
                raise
            failures += 1
            print(f"esrgan: error: {exc}", file=sys.stderr)
    if failures:
        print(f"esrgan: error: {failures} of {len(jobs)} inputs failed", file=sys.stderr)
        return EXIT_ERROR
    target = jobs[0].target if len(jobs) == 1 else Path(args.output)
    print(f"wrote {_count(jobs)} to {target}")
    return 0


def _usual_upscaler(params: UpscaleParams, remember_it: bool) -> tuple[Any, dict[str, Any]]:
    """The (torch) upscaler and its provenance step; recorded for the fast start when asked."""
    from esrgan_plugin.engines.upscalers import upscaler_for
    from esrgan_plugin.stages import upscale_provenance

    try:
        upscaler = upscaler_for(params)
        step = {
            "stage": "esrgan.upscale",
            "params": params.model_dump(mode="json"),
            "provenance": upscale_provenance(params),
        }
    except InferenceError as exc:  # settings the device cannot run (fp16 on the CPU, no CUDA)
        raise UsageError(str(exc)) from None
    if remember_it:
        remember(params, upscaler, step)
    return upscaler, step


def _run_images(
    jobs: list[Job],
    upscaler: Any,
    args: argparse.Namespace,
    step: dict[str, Any],
    command: list[str] | None,
    maps: dict[Path, Path],
    maker: Any,
) -> Iterator[EsrganError | PipelineError]:
    """Upscale and write each image, with progress bars; yields the error of each that failed."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    if not jobs:
        return
    show = sys.stderr.isatty() or args.debug
    with (
        logging_redirect_tqdm(),
        tqdm(
            total=len(jobs), unit="img", desc="images", disable=not show and len(jobs) == 1
        ) as bar,
    ):
        for job in jobs:
            with tqdm(unit="tile", desc=job.source.name, leave=False, disable=not show) as tiles:

                def on_tiles(done: int, total: int, tiles: tqdm = tiles) -> None:
                    tiles.total = total
                    tiles.n = done
                    tiles.refresh()

                try:
                    pixels, meta = read_image_with_meta(job.source, args.max_pixels)
                    if job.target in maps:
                        result = maker(job, pixels, maps[job.target], on_tiles)
                    else:
                        result = upscaler.upscale(pixels, on_tiles)
                    keep = not args.no_metadata
                    write_image(
                        job.target,
                        result,
                        overwrite=args.overwrite,
                        metadata=meta if keep else None,
                        provenance=_record(job, step, command) if keep else None,
                        quality=args.quality,
                    )
                except (EsrganError, PipelineError) as exc:
                    if len(jobs) > 1 and not args.debug:
                        tqdm.write(f"esrgan: error: {exc}", file=sys.stderr)
                    yield exc
            bar.update(1)


def _map_maker(
    args: argparse.Namespace, params: UpscaleParams, step: dict[str, Any], command: list[str]
) -> Any:
    """A function that upscales an image, writes its uncertainty map and returns the output."""
    from esrgan_plugin.engines.upscalers import upscaler_for
    from esrgan_plugin.options import UncertaintyParams
    from esrgan_plugin.stages import uncertainty_provenance
    from esrgan_plugin.uncertainty import map_image, upscale_with_uncertainty

    full = UncertaintyParams(
        **params.model_dump(),
        uncertainty_reference=args.uncertainty_reference,
        uncertainty_gain=args.uncertainty_gain,
    )
    upscaler = upscaler_for(params)
    reference_params = full.reference_params()
    reference = upscaler_for(reference_params) if reference_params is not None else None
    map_step = {
        **step,
        "stage": "esrgan.uncertainty",
        "params": full.model_dump(mode="json"),
        "provenance": uncertainty_provenance(full),
    }

    def make(job: Job, pixels: Any, target: Path, progress: Any) -> Any:
        out, uncertainty = upscale_with_uncertainty(upscaler, pixels, reference, progress)
        record = None if args.no_metadata else _record(job, map_step, command)
        write_image(
            target,
            map_image(uncertainty, args.uncertainty_gain),
            overwrite=args.overwrite,
            provenance=record,
        )
        return out

    return make


def _record(job: Job, step: dict[str, Any], command: list[str] | None) -> dict[str, Any]:
    return make_provenance(source=str(job.source), steps=[step], command=command)


def _count(jobs: list[Job]) -> str:
    counts = []
    for kind in ("image", "video"):
        n = sum(1 for job in jobs if job.kind == kind)
        if n:
            counts.append(f"{n} {kind}{'' if n == 1 else 's'}")
    return " and ".join(counts)
