"""``esrgan train CONFIG.yaml [--resume]``, added to the ``esrgan`` command through an entry point.

The plugin's CLI never imports this package: it loads the ``esrgan.commands`` entry points,
and this module's :func:`register` adds the subcommand.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand to the ``esrgan`` argument parser."""
    parser = subparsers.add_parser("train", help="train a model from an experiment YAML file")
    parser.add_argument("config", metavar="CONFIG", help="experiment YAML file")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the experiment's checkpoint"
    )
    parser.add_argument("--iterations", type=int, default=None, help="override optim.iterations")
    parser.add_argument(
        "--output-dir", default=None, help="override output_dir (relative to the current folder)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.loop import train

    overrides: dict[str, object] = {}
    if args.output_dir:
        overrides["output_dir"] = str(Path(args.output_dir).resolve())
    config = load_config(args.config, overrides)
    if args.iterations:
        config = config.model_copy(
            update={"optim": config.optim.model_copy(update={"iterations": args.iterations})}
        )
    result = train(config, resume=args.resume, progress=not args.quiet)
    figures = ", ".join(
        f"{k} {v:.4f}" for k, v in {**result.last_losses, **result.validation}.items()
    )
    print(f"trained {config.name} to iteration {result.iteration}: {figures}")
    print(f"generator: {result.generator_path}")
    return 0
