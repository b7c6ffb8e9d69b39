"""``esrgan upscale``: image files, globs or folders in; upscaled images out, one writer per output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydantic

from esrgan_plugin.errors import EsrganError, InferenceError, UsageError
from esrgan_plugin.options import OPTION_NAMES, UpscaleParams
from pipelines.api import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    PipelineError,
    add_model_arguments,
    describe_error,
    expand_inputs,
    given_values,
    output_lock,
    read_image,
    write_image,
)

EXIT_ERROR = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``upscale`` to the ``esrgan`` subcommands."""
    up = sub.add_parser("upscale", help="upscale image files, globs or folders")
    up.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, globs or folders")
    up.add_argument("-o", "--output", required=True, help="output file (one input file) or folder")
    add_model_arguments(
        up, UpscaleParams, only=["model", *OPTION_NAMES, "interpolate_with", "alpha"]
    )
    up.add_argument(
        "--ext", default=None, help="output format for folder outputs (default: the input's)"
    )
    up.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger inputs"
    )
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    up.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave outputs that exist alone and process only the others (re-running an interrupted batch)",
    )
    up.set_defaults(func=cmd_upscale)


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def plan_jobs(inputs: Sequence[str], output: str, ext: str | None, overwrite: bool) -> list[Job]:
    """Pair every input image with its output path; refuse clashes before any work starts."""
    sources: list[tuple[Path, Path]] = []  # (file, name relative to the output folder)
    for pattern in inputs:
        root = Path(pattern)
        for path in expand_inputs([pattern]):
            sources.append((path, path.relative_to(root) if root.is_dir() else Path(path.name)))
    if not sources:
        raise UsageError(f"no images found in {' '.join(inputs)}")
    out = Path(output)
    single_file = (
        len(sources) == 1
        and len(inputs) == 1
        and Path(inputs[0]).is_file()
        and out.suffix.lower() in IMAGE_SUFFIXES
        and not out.is_dir()
    )
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
        if ext.lower() not in IMAGE_SUFFIXES:
            raise UsageError(f"--ext {ext}: not one of {', '.join(IMAGE_SUFFIXES)}")
    one_file_in = len(sources) == 1 and len(inputs) == 1 and Path(inputs[0]).is_file()
    if one_file_in and out.suffix and not single_file and not out.is_dir():
        raise UsageError(
            f"{out}: unknown output format {out.suffix!r}; expected one of "
            f"{', '.join(IMAGE_SUFFIXES)} (or an existing folder)"
        )
    for parent in out.parents if single_file else (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{out}: cannot create it, {parent} is a file and not a folder")
    if single_file:
        jobs = [Job(sources[0][0], out)]
    else:
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out}: several inputs need an output folder, but this is a file")
        jobs = [
            Job(src, (out / rel).with_suffix(ext) if ext else out / rel) for src, rel in sources
        ]
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.target.resolve() == job.source.resolve():
            raise UsageError(f"{job.target}: output would replace its own input")
        if job.target in seen:
            raise UsageError(
                f"{seen[job.target]} and {job.source} would both be written to {job.target}"
            )
        seen[job.target] = job.source
        if job.target.exists() and not overwrite:
            raise UsageError(f"{job.target}: output exists; pass --overwrite to replace it")
    return jobs


def upscale_params(args: argparse.Namespace) -> UpscaleParams:
    """The stage parameters the options given on the command line describe (bad values: exit 2)."""
    try:
        return UpscaleParams(**given_values(args, UpscaleParams.model_fields))
    except pydantic.ValidationError as exc:
        raise UsageError(describe_error(exc, flags=True)) from None


def cmd_upscale(args: argparse.Namespace) -> int:
    with output_lock(args.output):  # a second run writing the same output is refused
        return _upscale(args)


def _upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from esrgan_plugin.engines.upscalers import upscaler_for

    params = upscale_params(args)
    jobs = plan_jobs(args.inputs, args.output, args.ext, args.overwrite or args.skip_existing)
    if args.skip_existing and not args.overwrite:
        jobs = [job for job in jobs if not job.target.exists()]
        if not jobs:
            print(f"nothing to do: every output in {args.output} exists")
            return 0
    try:
        upscaler = upscaler_for(params)
    except InferenceError as exc:  # settings the device cannot run (fp16 on the CPU, no CUDA)
        raise UsageError(str(exc)) from None
    failures = 0
    show = sys.stderr.isatty() or args.debug
    with (
        logging_redirect_tqdm(),
        tqdm(
            total=len(jobs), unit="img", desc="images", disable=not show and len(jobs) == 1
        ) as images,
    ):
        for job in jobs:
            with tqdm(unit="tile", desc=job.source.name, leave=False, disable=not show) as tiles:

                def on_tiles(done: int, total: int, bar: tqdm = tiles) -> None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

                try:
                    result = upscaler.upscale(read_image(job.source, args.max_pixels), on_tiles)
                    write_image(job.target, result, overwrite=args.overwrite)
                except (EsrganError, PipelineError) as exc:
                    if len(jobs) == 1 or args.debug:
                        raise
                    failures += 1
                    tqdm.write(f"esrgan: error: {exc}", file=sys.stderr)
            images.update(1)
    if failures:
        print(f"esrgan: error: {failures} of {len(jobs)} images failed", file=sys.stderr)
        return EXIT_ERROR
    target = jobs[0].target if len(jobs) == 1 else Path(args.output)
    print(f"wrote {len(jobs)} image(s) to {target}")
    return 0
