"""Tiles: activation memory per pixel, per-pixel cost against tile side, and tile x halo error.

Prints Markdown tables for the README. Every table names the CPU, its flags, the thread count
and the load average: this machine is shared, so timings are noisy (CPU time of this process is
reported beside wall time for that reason). The memory and curve tables measure fp32 and
bf16, bf16 only where the CPU has bf16 arithmetic (``bench/native_bf16.py``).

    python bench/bench_tiles.py memory [--nb 1]                  # peak RSS per input pixel
    python bench/bench_tiles.py curve [--nb 2] [--repeats 3]     # CPU time per pixel vs side
    python bench/bench_tiles.py errors MODEL [--size 192] [--tiles 32 64] [--halos 0 16 32 ...]
                                     [--dask] [--image PATH]     # tiled (and Dask) vs whole
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
from esrgan_plugin.device import cpu_info
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.models.loading import load_model
from esrgan_plugin.tiles.halo import model_halo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from native_bf16 import BF16_LEFT_OUT, float_precisions  # noqa: E402

FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx512f", "avx2")


def print_bf16_note(precisions: tuple[str, ...]) -> None:
    """The note line where ``precisions`` leaves bf16 out."""
    if "bf16" not in precisions:
        print(f"{BF16_LEFT_OUT}.\n")


def machine_line() -> str:
    """CPU model, relevant flags, torch threads and load: printed with every table."""
    info = cpu_info()
    model, flags = info.model, info.flags
    present = ", ".join(f for f in FLAGS if f in flags) or "none of " + ", ".join(FLAGS)
    load = "/".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"CPU: {model}, {os.cpu_count()} cores; flags: {present}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average {load} (shared machine)"
    )


# --------------------------------------------------------------------------- memory


def _peak_rss_per_pixel(precision: str, size: int, nb: int) -> float:
    """Run in a child process: peak RSS growth of one whole-image forward, bytes per input pixel."""
    code = f"""
import resource, torch
torch.set_num_threads(1)
from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
from esrgan_plugin.inference import Upscaler, UpscaleOptions
up = Upscaler(RRDBNet(RRDBNetConfig(num_blocks={nb})), UpscaleOptions(tile=0, precision="{precision}", device="cpu"))
up.upscale_tensor(torch.rand(1, 3, 16, 16))
x = torch.rand(1, 3, {size}, {size})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = up.upscale_tensor(x)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024 / {size} ** 2 - out.numel() * 4 / {size} ** 2)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip().splitlines()[-1])


def memory_table(nb: int, sizes: tuple[int, int] = (384, 768)) -> None:
    """Peak RSS growth at two input sizes (fresh processes); the slope is the per-pixel cost."""
    print(f"\n### Activation memory, RRDBNet x4 nf 64 nb {nb}, whole-image forward, CPU\n")
    print(machine_line() + "\n")
    precisions = float_precisions()
    print_bf16_note(precisions)
    print(
        "| precision | per input pixel at "
        + " / ".join(f"{s}x{s}" for s in sizes)
        + " | slope between them |"
    )
    print("| --- | ---: | ---: |")
    small, large = sizes
    for precision in precisions:
        per = [_peak_rss_per_pixel(precision, size, nb) for size in sizes]
        slope = (per[1] * large**2 - per[0] * small**2) / (large**2 - small**2)
        print(
            f"| {precision} | {per[0] / 1024:.1f} KB / {per[1] / 1024:.1f} KB | {slope / 1024:.1f} KB |"
        )


# --------------------------------------------------------------------------- cost curve


def curve_table(nb: int, repeats: int, sides: list[int]) -> None:
    """CPU seconds per padded input pixel for one forward, against the padded side."""
    torch.manual_seed(0)
    net = RRDBNet(RRDBNetConfig(num_blocks=nb))
    precisions = float_precisions()
    ups = {p: Upscaler(net, UpscaleOptions(tile=0, precision=p, device="cpu")) for p in precisions}
    inputs = {s: torch.rand(1, 3, s, s) for s in sides}
    for up in ups.values():
        up.upscale_tensor(inputs[sides[0]])
    cpu: dict[tuple[str, int], list[float]] = {(p, s): [] for p in ups for s in sides}
    wall: dict[tuple[str, int], list[float]] = {(p, s): [] for p in ups for s in sides}
    for _ in range(repeats):  # interleaved: every side and precision once per round
        for s in sides:
            for p, up in ups.items():
                reps = max(1, (max(sides) // s) ** 2 // 4)
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(reps):
                    up.upscale_tensor(inputs[s])
                cpu[p, s].append((time.process_time() - c0) / reps / s**2)
                wall[p, s].append((time.perf_counter() - w0) / reps / s**2)
    print(
        f"\n### Per-pixel cost against tile side, RRDBNet x4 nf 64 nb {nb}, median of {repeats}\n"
    )
    print(machine_line() + "\n")
    print_bf16_note(precisions)
    print("| precision | padded side | CPU us / px | wall us / px | CPU cost vs smallest side |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for p in ups:
        base = statistics.median(cpu[p, sides[0]])
        for s in sides:
            c, w = statistics.median(cpu[p, s]), statistics.median(wall[p, s])
            print(f"| {p} | {s} | {c * 1e6:.1f} | {w * 1e6:.1f} | {c / base:.2f} |")


# --------------------------------------------------------------------------- errors


def load_image(path: str | None, size: int) -> np.ndarray:
    """A ``size`` x ``size`` crop: of ``path``, else of scikit-image's rocket (not a probe photo)."""
    if path:
        from pipelines.io.images import read_image

        image = read_image(path)
    else:
        from skimage import data

        image = data.rocket()[120:, 180:]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[:size, :size, :3])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def dask_upscale(image: np.ndarray, model: str, chunk: int, halo: int | None) -> np.ndarray:
    """The pipeline stage esrgan.upscale mapped over a Dask array in ``chunk``-pixel blocks."""
    import dask.array as da

    from esrgan_plugin.options import UpscaleParams
    from esrgan_plugin.stages import stage_specs
    from pipelines.io.items import ImageItem, ImageMeta
    from pipelines.runner.blocks import BlockPlan, map_image

    spec = next(s for s in stage_specs() if s.id == "esrgan.upscale")
    params = UpscaleParams(model=model, halo=halo, precision="fp32", device="cpu")
    plan = BlockPlan(spec.halo_for(params), spec.scale_for(params), spec.multiple_for(params))
    meta = ImageMeta("bench", None, image.dtype.name, image.shape[2])
    item = ImageItem(da.from_array(image, chunks=(chunk, chunk, 3)), meta)
    out = map_image(item, "sr", spec.id, spec.fn, params, plan)
    return np.asarray(out.data.compute(scheduler="synchronous"))


def errors_table(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    image = load_image(args.image, args.size)
    measured = model_halo(model.module)
    whole_up = Upscaler(model, UpscaleOptions(tile=0, precision="fp32", device="cpu"))
    start = time.perf_counter()
    whole = whole_up.upscale(image)
    whole_s = time.perf_counter() - start
    name = Path(args.model).stem
    print(
        f"\n### Tiled vs whole image: {name}, {args.size}x{args.size} "
        f"{'photo ' + Path(args.image).name if args.image else 'crop of scikit-image rocket'}, fp32\n"
    )
    print(machine_line())
    print(
        f"\nMeasured halo {measured.halo} (probe bound {measured.bound * 255:.1f}/255); whole image "
        f"{whole_s:.1f} s. Work = padded / kept input pixels of an interior tile, ((tile + 2 halo) / tile)^2;"
        " throughput relative to the same tile without halo is 1 / work.\n"
    )
    print(
        "| tile | halo | work (interior) | max abs error (x255) | pixels off by > 1/255 | PSNR vs whole | seconds |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    halos = sorted(set(args.halos) | {measured.halo})
    for tile in [] if args.only_dask else args.tiles:
        for halo in halos:
            up = Upscaler(
                model, UpscaleOptions(tile=tile, halo=halo, precision="fp32", device="cpu")
            )
            start = time.perf_counter()
            tiled = up.upscale(image)
            seconds = time.perf_counter() - start
            err = np.abs(tiled.astype(int) - whole)
            mark = " (default)" if halo == measured.halo else ""
            print(
                f"| {tile} | {halo}{mark} | {((tile + 2 * halo) / tile) ** 2:.2f} | {err.max()} | "
                f"{(err > 1).mean():.3%} | {psnr(tiled, whole):.1f} dB | {seconds:.1f} |",
                flush=True,
            )
    if args.dask or args.only_dask:
        for chunk in args.tiles:
            start = time.perf_counter()
            out = dask_upscale(image, args.model, chunk, None)
            seconds = time.perf_counter() - start
            err = np.abs(out.astype(int) - whole)
            print(
                f"| Dask blocks {chunk} | {measured.halo} (default) | "
                f"{((chunk + 2 * measured.halo) / chunk) ** 2:.2f} | {err.max()} | "
                f"{(err > 1).mean():.3%} | {psnr(out, whole):.1f} dB | {seconds:.1f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="command", required=True)
    mem = sub.add_parser("memory")
    mem.add_argument("--nb", type=int, default=1)
    curve = sub.add_parser("curve")
    curve.add_argument("--nb", type=int, default=2)
    curve.add_argument("--repeats", type=int, default=3)
    curve.add_argument("--sides", type=int, nargs="+", default=[64, 128, 256, 512])
    err = sub.add_parser("errors")
    err.add_argument("model")
    err.add_argument("--size", type=int, default=192)
    err.add_argument("--tiles", type=int, nargs="+", default=[32, 64])
    err.add_argument("--halos", type=int, nargs="+", default=[0, 16, 32, 48, 64, 96])
    err.add_argument("--image", default=None)
    err.add_argument("--dask", action="store_true", help="also the Dask chunked stage path")
    err.add_argument("--only-dask", action="store_true", help="only the Dask rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "memory":
        memory_table(args.nb)
    elif args.command == "curve":
        curve_table(args.nb, args.repeats, args.sides)
    else:
        errors_table(args)


if __name__ == "__main__":
    main()
