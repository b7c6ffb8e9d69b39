"""Speed of an architecture loaded through spandrel beside RealESRGAN_x4plus, on this CPU.

SPAN x4 at its published size (48 feature channels, random weights: speed does not depend on
the values) is saved to a file, loaded by ``load_model`` like any user's file (spandrel), and
timed with the same ``Upscaler`` as RealESRGAN_x4plus's real weights (the
``realesrgan-x4plus`` catalogue model), whole image, interleaved rounds in one process
(:func:`bench_inference.interleaved`: medians, and ratios within each round, so the load of a
shared machine slows every entry alike). Prints a Markdown table and the machine line (CPU
model, bf16/int8 flags, threads, load). SPAN's bf16 run is left out where the CPU has no bf16
arithmetic (``bench/native_bf16.py``): it would be SPAN's fp32 run again, emulated bf16 aside.

    python bench/bench_architectures.py [--size 192] [--repeats 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as the esrgan CLI does

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import Entry, interleaved, machine_line, test_image  # noqa: E402
from native_bf16 import BF16_LEFT_OUT, bf16_here  # noqa: E402

from esrgan_plugin.inference import UpscaleOptions, Upscaler  # noqa: E402
from esrgan_plugin.models.loaded import LoadedModel  # noqa: E402
from esrgan_plugin.models.loading import load_model  # noqa: E402


def span_x4(folder: Path) -> LoadedModel:
    """SPAN x4, 48 channels (the published configuration), saved and loaded as a user's file."""
    from spandrel.architectures.SPAN import SPAN

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=4).eval()
    path = folder / "4x-SPAN.pth"
    torch.save(net.state_dict(), path)
    return load_model(path)


def entry(name: str, model: LoadedModel, image: torch.Tensor, **options: object) -> Entry:
    upscaler = Upscaler(model, UpscaleOptions(tile=0, device="cpu", **options))  # type: ignore[arg-type]
    label = f"{name} ({upscaler.engine.name} {upscaler.precision})"
    return Entry(label, lambda: upscaler.upscale_tensor(image))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192, help="input side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="realesrgan-x4plus", help="the ESRGAN reference")
    args = parser.parse_args()
    image = test_image(args.size)
    x4plus = load_model(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        span = span_x4(Path(scratch))
    entries = [
        entry("x4plus", x4plus, image, precision="fp32", engine="pytorch"),
        entry("x4plus", x4plus, image, precision="fp32", engine="auto"),
        entry("SPAN x4", span, image, precision="fp32", engine="pytorch"),
    ]
    if bf16_here():
        entries.append(entry("SPAN x4", span, image, precision="bf16", engine="pytorch"))
    results = interleaved(entries, args.repeats)
    sizes = {"x4plus": x4plus, "SPAN x4": span}
    print(f"{args.size}x{args.size} input, whole image, median of {args.repeats} rounds\n")
    print("| model (engine precision) | parameters | seconds | speed vs x4plus pytorch fp32 |")
    print("| --- | ---: | ---: | ---: |")
    for item in entries:
        model = sizes[item.name.split(" (")[0]]
        params = sum(p.numel() for p in model.module.parameters())
        row = results[item.name]
        print(f"| {item.name} | {params:,} | {row['seconds']:.3f} | {row['ratio']:.2f}x |")
    print(f"\n{machine_line()}")
    if not bf16_here():
        print(f"\n{BF16_LEFT_OUT}.")


if __name__ == "__main__":
    main()
