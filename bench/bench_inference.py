"""Inference benchmark: the full x4 RRDBNet against spandrel's ESRGAN, tiling cost, halo error.

Prints Markdown tables (the README quotes them). Runs are interleaved and repeated; figures are
medians. spandrel runs the same weights in the same process with the same thread count.

    python bench/bench_inference.py [--repeats 3] [--size 128] [--model PATH]
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig, receptive_radius
from esrgan_plugin.checkpoint import LoadedModel, build_from_state_dict, load_model
from esrgan_plugin.inference import UpscaleOptions, Upscaler

FLOP_PER_PIXEL_X4 = 35.8e6  # RRDBNet x4, nf 64, gc 32, nb 23 (DESIGN.md section 7)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def time_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_image(size: int) -> torch.Tensor:
    """A natural photo crop (scikit-image's astronaut when available), NCHW float in [0, 1]."""
    try:
        from skimage import data

        photo = data.astronaut()[100 : 100 + size, 150 : 150 + size]
        if photo.shape[:2] == (size, size):
            return (
                torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
            )
    except Exception:
        pass
    torch.manual_seed(0)
    return torch.rand(1, 3, size, size)


def speed_table(model: LoadedModel, size: int, repeats: int) -> None:
    import spandrel

    x = test_image(size)
    reference = spandrel.ModelLoader().load_from_state_dict(model.module.state_dict()).model.eval()
    fp32 = Upscaler(model, UpscaleOptions(tile=0, precision="fp32", device="cpu"))
    bf16 = Upscaler(model, UpscaleOptions(tile=0, precision="bf16", device="cpu"))

    def run_reference() -> torch.Tensor:
        with torch.no_grad():
            return reference(x)

    runs: dict[str, Callable[[], torch.Tensor]] = {
        "spandrel ESRGAN fp32 (reference)": run_reference,
        "esrgan_plugin fp32 (channels_last)": lambda: fp32.upscale_tensor(x),
        "esrgan_plugin bf16 autocast (channels_last)": lambda: bf16.upscale_tensor(x),
    }
    outputs = {name: fn() for name, fn in runs.items()}  # warm-up, and outputs for the PSNR
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(time_call(fn))
    ref_name = next(iter(runs))
    ref_time = statistics.median(times[ref_name])
    ref_out = outputs[ref_name].clamp(0, 1)
    pixels = size * size
    print(
        f"\n### Full RRDBNet x4 (nf 64, gc 32, nb 23), {size}x{size} input, CPU, {torch.get_num_threads()} threads, median of {repeats}\n"
    )
    print(
        "| run | seconds | input px/s | output MPix/s | GFLOP/s | vs spandrel fp32 | PSNR vs spandrel fp32 |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in runs:
        t = statistics.median(times[name])
        out = outputs[name].clamp(0, 1)
        print(
            f"| {name} | {t:.2f} | {pixels / t:,.0f} | {pixels * 16 / t / 1e6:.3f} | "
            f"{FLOP_PER_PIXEL_X4 * pixels / t / 1e9:.0f} | {ref_time / t:.2f}x | {psnr(out, ref_out):.1f} dB |"
        )


def tiling_table(model: LoadedModel, size: int, repeats: int) -> None:
    x = test_image(size)
    configs = {
        "whole image": UpscaleOptions(tile=0, precision="bf16", device="cpu"),
        f"tile {size // 2}, halo 24, batch 4": UpscaleOptions(
            tile=size // 2, halo=24, batch_size=4, precision="bf16", device="cpu"
        ),
        f"tile {size // 2}, halo 8, batch 4": UpscaleOptions(
            tile=size // 2, halo=8, batch_size=4, precision="bf16", device="cpu"
        ),
    }
    upscalers = {name: Upscaler(model, opts) for name, opts in configs.items()}
    for up in upscalers.values():
        up.upscale_tensor(x)
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, up in upscalers.items():
            times[name].append(time_call(lambda up=up: up.upscale_tensor(x)))
    whole = statistics.median(times["whole image"])
    print(
        f"\n### Tiled vs whole image, full x4 model, bf16, {size}x{size} input, median of {repeats}\n"
    )
    print("| run | seconds | output MPix/s | relative throughput |")
    print("| --- | ---: | ---: | ---: |")
    for name in configs:
        t = statistics.median(times[name])
        print(f"| {name} | {t:.2f} | {size * size * 16 / t / 1e6:.3f} | {whole / t:.2f} |")


def halo_table(model: LoadedModel, label: str, size: int, tile: int) -> None:
    x = test_image(size)
    whole = (
        Upscaler(model, UpscaleOptions(tile=0, precision="fp32", device="cpu"))
        .upscale_tensor(x)
        .clamp(0, 1)
    )
    radius = receptive_radius(model.config)  # type: ignore[arg-type]
    print(
        f"\n### Halo error: {label} (receptive radius {radius} LR px), {size}x{size} input, tile {tile}, fp32\n"
    )
    print("| halo (LR px) | max abs error (x255) | pixels off by > 1/255 | PSNR vs whole image |")
    print("| ---: | ---: | ---: | ---: |")
    for halo in (0, 2, 4, 8, 16, 24, 32):
        up = Upscaler(model, UpscaleOptions(tile=tile, halo=halo, precision="fp32", device="cpu"))
        tiled = up.upscale_tensor(x).clamp(0, 1)
        err = (tiled - whole).abs()
        off = (err * 255 > 1).float().mean().item()
        print(
            f"| {halo} | {err.max().item() * 255:.3f} | {off:.4%} | {psnr(tiled, whole):.1f} dB |"
        )


def precision_table(model: LoadedModel, label: str, size: int) -> None:
    """bf16 output against fp32 output for a trained model (real weights, real activations)."""
    x = test_image(size)
    fp32 = (
        Upscaler(model, UpscaleOptions(tile=0, precision="fp32", device="cpu"))
        .upscale_tensor(x)
        .clamp(0, 1)
    )
    bf16 = (
        Upscaler(model, UpscaleOptions(tile=0, precision="bf16", device="cpu"))
        .upscale_tensor(x)
        .clamp(0, 1)
    )
    err = (bf16 - fp32).abs().max().item() * 255
    print(f"\n### bf16 against fp32, trained model {label!r}, {size}x{size} input\n")
    print(f"PSNR {psnr(bf16, fp32):.1f} dB, max abs error {err:.2f}/255")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=128, help="input side for the speed table")
    parser.add_argument(
        "--model",
        default=None,
        help="a trained x4 model for the halo table (default: shipped default, if any)",
    )
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads {torch.get_num_threads()}"
    )
    torch.manual_seed(0)
    full = build_from_state_dict(
        RRDBNet(RRDBNetConfig()).state_dict(), source="random-init full x4"
    )
    speed_table(full, args.size, args.repeats)
    tiling_table(full, 2 * args.size, args.repeats)
    halo_table(full, "full x4 model, random initialisation", 96, 32)
    trained = args.model or "default"
    try:
        model = load_model(trained)
    except Exception as exc:  # no trained model available: say so rather than guess
        print(f"\n(halo table for a trained model skipped: {exc})")
    else:
        halo_table(
            model,
            f"trained model {trained!r} (nf {model.config.num_features}, nb {model.config.num_blocks})",
            96,
            32,
        )
        precision_table(model, trained, 128)


if __name__ == "__main__":
    main()
