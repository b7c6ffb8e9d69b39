"""The ``esrgan export`` subcommand: any loadable model to an ONNX file or a bioimage.io package.

The format is ``--format``, else the output's suffix: ``.zip`` is a bioimage.io package
(:mod:`esrgan_plugin.export.bioimageio`), anything else ONNX (which wants ``.onnx``). Options of
the other format are refused as usage errors rather than ignored.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from esrgan_plugin.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export`` to the ``esrgan`` subcommands."""
    exp = sub.add_parser(
        "export",
        help="export a model to ONNX or a bioimage.io package, checked before writing",
    )
    exp.add_argument("model", help="model file (.pth, .pt, .safetensors) or shipped name")
    exp.add_argument("-o", "--output", required=True, help="output .onnx file or package .zip")
    exp.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="onnx or bioimageio (default: bioimageio for a .zip output, else onnx)",
    )
    exp.add_argument(
        "--dynamic", action="store_true", help="any batch size, height and width (>= 4 px)"
    )
    exp.add_argument("--fp16", action="store_true", help="fp16 weights, input and output")
    exp.add_argument(
        "--size",
        default=None,
        help="ONNX: input size of a static export, N or HxW (default 64); bioimage.io: side of "
        "the test tensors, N (default 64, rounded up to a valid size)",
    )
    exp.add_argument(
        "--batch", type=int, default=None, help="batch size of a static export (default 1)"
    )
    exp.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    exp.add_argument(
        "--no-check", action="store_true", help="do not compare with PyTorch in onnxruntime"
    )
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output")
    bio = exp.add_argument_group("bioimage.io packages")
    bio.add_argument(
        "--channels",
        type=int,
        default=None,
        help="channels the package takes: the model's (default), or 1 to apply a colour model "
        "to a grey channel (replicated; the output is its luma)",
    )
    bio.add_argument(
        "--value-range",
        default=None,
        choices=["0..1", "0..255", "0..65535"],
        help="values the package takes and gives (default 0..255)",
    )
    bio.add_argument(
        "--licence",
        default=None,
        help="SPDX licence of the weights (default: the catalogue entry's)",
    )
    bio.add_argument(
        "--author",
        action="append",
        default=None,
        help="who trained the model (repeatable; default: known for catalogue models)",
    )
    exp.set_defaults(func=cmd_export)


FORMATS = ("onnx", "bioimageio")
_ONNX_ONLY = ("dynamic", "fp16", "batch", "no_check")
_BIOIMAGEIO_ONLY = ("channels", "value_range", "licence", "author")


def parse_size(text: str) -> tuple[int, int]:
    """``"64"`` -> (64, 64); ``"96x128"`` -> (96, 128) as (height, width)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise UsageError(f"--size {text!r}: expected N or HxW, e.g. 64 or 96x128")
    return (values[0], values[-1])


def export_format(args: argparse.Namespace) -> str:
    """The format asked for, or the one the output's suffix implies; other formats' options refused."""
    chosen = args.format or ("bioimageio" if args.output.lower().endswith(".zip") else "onnx")
    foreign = _ONNX_ONLY if chosen == "bioimageio" else _BIOIMAGEIO_ONLY
    given = [name for name in foreign if getattr(args, name) not in (None, False)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag} does not apply to --format {chosen}")
    return chosen


def cmd_export(args: argparse.Namespace) -> int:
    if export_format(args) == "bioimageio":
        return cmd_export_bioimageio(args)
    from esrgan_plugin.export.onnx import DEFAULT_OPSET, OnnxExportOptions, export_onnx

    if args.dynamic and (args.size is not None or args.batch is not None):
        raise UsageError("--size and --batch fix a static shape; --dynamic takes any size")
    height, width = parse_size(args.size or "64")
    options = OnnxExportOptions(
        dynamic=args.dynamic,
        fp16=args.fp16,
        height=height,
        width=width,
        batch=1 if args.batch is None else args.batch,
        opset=DEFAULT_OPSET if args.opset is None else args.opset,
    )
    check = not args.no_check
    if check and importlib.util.find_spec("onnxruntime") is None:
        print("esrgan: onnxruntime is not installed; the export is not checked", file=sys.stderr)
        check = False
    from esrgan_plugin.models.loading import load_model

    result = export_onnx(
        load_model(args.model), args.output, options, check=check, overwrite=args.overwrite
    )
    shape = "x".join(str(d) for d in result.input_shape)
    out_shape = "x".join(str(d) for d in result.output_shape)
    checked = (
        f"; onnxruntime vs PyTorch fp32 max abs error {result.max_abs_error:.2g}"
        if result.max_abs_error is not None
        else "; not checked"
    )
    print(
        f"wrote {result.path} (opset {result.opset}, {result.precision}, "
        f"{shape} -> {out_shape}{checked})"
    )
    return 0


def cmd_export_bioimageio(args: argparse.Namespace) -> int:
    """``esrgan export MODEL -o model.zip``: a bioimage.io package, tested before it is written."""
    from esrgan_plugin.export.bioimageio import (
        DEFAULT_TEST_SIZE,
        DEFAULT_VALUE_RANGE,
        BioimageioOptions,
        catalogue_entry,
        export_bioimageio,
        require_bioimageio,
    )
    from esrgan_plugin.export.onnx import DEFAULT_OPSET

    side = DEFAULT_TEST_SIZE
    if args.size is not None:
        height, width = parse_size(args.size)
        if height != width:
            raise UsageError(f"--size {args.size!r}: a package's test tensors are square; give N")
        side = height
    require_bioimageio()  # before loading a model that can take a while
    options = BioimageioOptions(
        channels=args.channels,
        value_range=args.value_range or DEFAULT_VALUE_RANGE,
        test_size=side,
        opset=DEFAULT_OPSET if args.opset is None else args.opset,
        authors=tuple(args.author or ()),
        licence=args.licence,
    )
    from esrgan_plugin.models.loading import load_model

    label, entry = catalogue_entry(args.model)
    result = export_bioimageio(
        load_model(args.model),
        args.output,
        options,
        label=label,
        entry=entry,
        overwrite=args.overwrite,
    )
    for note in result.notes:
        print(f"esrgan: note: {note}", file=sys.stderr)
    print(
        f"wrote {result.path} (bioimage.io model 0.5 {result.name!r}: weights "
        f"{', '.join(result.weights)}; input {result.channels} channel(s) x "
        f"({result.min_size} + n*{result.step}) px, halo {result.halo} px; "
        f"test_model passed on the CPU)"
    )
    return 0
