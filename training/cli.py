"""``esrgan train CONFIG.yaml [--resume]``, added to the ``esrgan`` command through an entry point.

The plugin's CLI never imports this package: it loads the ``esrgan.commands`` entry points,
and this module's :func:`register` adds the subcommand.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand to the ``esrgan`` argument parser."""
    from training.overrides import add_override_arguments

    parser = subparsers.add_parser(
        "train",
        help="train a model from an experiment YAML file (under torchrun: one rank per process)",
    )
    parser.add_argument("config", metavar="CONFIG", help="experiment YAML file")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the experiment's checkpoint"
    )
    add_override_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; exit 130/143 after writing a checkpoint when SIGINT/SIGTERM stopped the run."""
    from training.loop import train
    from training.overrides import load_with_overrides, overrides_from_args

    config = load_with_overrides(args.config, overrides_from_args(args))
    result = train(config, resume=args.resume, progress=not args.quiet)
    if result.interrupted_by is not None:
        print(
            f"esrgan: {config.name} stopped by {result.interrupted_by} at iteration "
            f"{result.iteration}; checkpoint written, continue with --resume",
            file=sys.stderr,
        )
        return 143 if result.interrupted_by == "SIGTERM" else 130
    figures = ", ".join(
        f"{k} {v:.4f}" for k, v in {**result.last_losses, **result.validation}.items()
    )
    if _is_main_rank():
        print(f"trained {config.name} to iteration {result.iteration}: {figures}")
        print(f"generator: {result.generator_path}")
    return 0


def _is_main_rank() -> bool:
    """Whether this process prints the summary (rank 0 of a torchrun job, or a lone process)."""
    from training.distributed import from_environment

    return from_environment().is_main


def register_prepare(subparsers: Any) -> None:
    """Add the ``prepare-data`` subcommand: HR folder -> Zarr of HR/LR sub-image pairs."""
    from training.prepare_options import PrepareOptions

    parser = subparsers.add_parser(
        "prepare-data",
        help="cut HR images into sub-images with MATLAB-bicubic LR pairs, into one Zarr store",
    )
    parser.add_argument("hr_dir", metavar="HR_DIR", help="folder of HR images (recursive)")
    parser.add_argument("-o", "--output", required=True, help="output DATA.zarr")
    for name, field in PrepareOptions.model_fields.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=int,
            default=field.default,
            help=f"{field.description} (default {field.default})",
        )
    parser.add_argument(
        "--executor",
        default="threads",
        help="threads (default), processes (a LocalCluster) or a scheduler tcp://host:8786",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a store prepared differently"
    )
    parser.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    """Prepare (or resume) the store and print what it holds."""
    from pydantic import ValidationError

    from training.errors import TrainingError
    from training.prepare import prepare_dataset
    from training.prepare_options import PrepareOptions

    try:
        options = PrepareOptions(
            **{name: getattr(args, name) for name in PrepareOptions.model_fields}
        )
    except ValidationError as exc:
        raise TrainingError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    manifest = prepare_dataset(
        args.hr_dir, args.output, options, args.executor, args.overwrite, sys.stderr
    )
    print(
        f"{args.output}: {manifest['count']} sub-image pairs from {len(manifest['images'])} images "
        f"(crop {options.crop}, step {options.step}, x{options.scale})"
    )
    return 0
