"""The ``esrgan export`` subcommand: any loadable model to an ONNX file."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from esrgan_plugin.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export`` to the ``esrgan`` subcommands."""
    exp = sub.add_parser(
        "export", help="export a model to ONNX, checked against onnxruntime before writing"
    )
    exp.add_argument("model", help="model file (.pth, .pt, .safetensors) or shipped name")
    exp.add_argument("-o", "--output", required=True, help="output .onnx file")
    exp.add_argument(
        "--dynamic", action="store_true", help="any batch size, height and width (>= 4 px)"
    )
    exp.add_argument("--fp16", action="store_true", help="fp16 weights, input and output")
    exp.add_argument(
        "--size", default=None, help="input size of a static export: N or HxW (default 64)"
    )
    exp.add_argument(
        "--batch", type=int, default=None, help="batch size of a static export (default 1)"
    )
    exp.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    exp.add_argument(
        "--no-check", action="store_true", help="do not compare with PyTorch in onnxruntime"
    )
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output")
    exp.set_defaults(func=cmd_export)


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


def cmd_export(args: argparse.Namespace) -> int:
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
