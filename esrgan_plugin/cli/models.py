"""``esrgan info``, ``models``, ``interpolate`` and ``convert``: describing and rewriting model files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from esrgan_plugin.errors import InterpolationError, UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``info``, ``models``, ``interpolate`` and ``convert`` to the ``esrgan`` subcommands."""
    info = sub.add_parser(
        "info", help="describe a model file, or an image file's provenance, ICC profile and EXIF"
    )
    info.add_argument("model", metavar="MODEL|IMAGE")
    info.add_argument("--json", action="store_true", help="print a JSON object")
    info.set_defaults(func=cmd_info)

    models = sub.add_parser("models", help="list named models (shipped and installed packages)")
    models.add_argument("--json", action="store_true", help="print a JSON list")
    models.set_defaults(func=cmd_models)

    interp = sub.add_parser("interpolate", help="network interpolation (1 - alpha) * A + alpha * B")
    interp.add_argument("model_a", metavar="MODEL_A", help="the PSNR-oriented model")
    interp.add_argument("model_b", metavar="MODEL_B", help="the GAN model")
    interp.add_argument(
        "--alpha", type=float, required=True, help="0 gives MODEL_A, 1 gives MODEL_B"
    )
    interp.add_argument("-o", "--output", required=True, help="output .safetensors file")
    interp.add_argument("--overwrite", action="store_true")
    interp.set_defaults(func=cmd_interpolate)

    conv = sub.add_parser(
        "convert", help="rewrite any supported checkpoint as canonical safetensors"
    )
    conv.add_argument("model")
    conv.add_argument("-o", "--output", required=True, help="output .safetensors file")
    conv.add_argument("--overwrite", action="store_true")
    conv.set_defaults(func=cmd_convert)


def cmd_info(args: argparse.Namespace) -> int:
    from esrgan_plugin.cli.image_info import cmd_image_info, is_image_path

    if is_image_path(args.model):  # an image file: how it was made, not a model
        return cmd_image_info(args.model, args.json)
    from esrgan_plugin.models.names import resolve_model_path

    path = resolve_model_path(args.model)  # a wrong name is refused before torch is imported
    from esrgan_plugin.models.loading import load_model

    description = load_model(path).describe()
    if args.json:
        print(json.dumps(description, indent=2))
        return 0
    for key, value in description.items():
        if key == "metadata":
            for mkey, mvalue in dict(value).items():  # type: ignore[call-overload]
                print(f"  {mkey}: {mvalue}")
        elif key != "card":  # its description, licence and author are shown on their own
            print(f"{key}: {' / '.join(str(value).splitlines())}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """The catalogue from its data (no torch), then the model folders' files (read once each)."""
    from esrgan_plugin.models import listing
    from esrgan_plugin.models.catalogue import catalogue

    cat = catalogue()
    rows = listing.catalogue_rows(cat)
    folders = listing.folder_rows()
    if args.json:
        print(json.dumps([*rows, *({**row, "source": "folder"} for row in folders)], indent=2))
        return 0
    for line in listing.catalogue_lines(rows, cat.default_name()):
        print(line)
    for line in listing.folder_lines(folders):
        print(line)
    return 0


def _check_output(path: str, overwrite: bool) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".safetensors":
        raise UsageError(f"{out}: the output must be a .safetensors file")
    if out.exists() and not overwrite:
        raise UsageError(f"{out}: output exists; pass --overwrite to replace it")
    return out


def cmd_interpolate(args: argparse.Namespace) -> int:
    from esrgan_plugin.interpolate import check_alpha, interpolate_models
    from esrgan_plugin.models.loading import load_model, save_model

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
    from esrgan_plugin.models.loading import load_model, save_model

    out = _check_output(args.output, args.overwrite)
    model = load_model(args.model)
    save_model(
        out,
        model.module,
        {**model.metadata, "converted_from": f"{model.layout}: {Path(args.model).name}"},
    )
    print(f"wrote {out} ({model.architecture}, {model.layout} layout, x{model.scale})")
    return 0
