"""OME-Zarr x4 benchmark: peak memory of read -> esrgan.upscale -> write (level 0 + pyramid) as the image grows.

A 3-channel uint16 (c, y, x) OME-Zarr image (NGFF 0.5, written by ``ome-zarr``, 256-pixel
chunks) is upscaled x4 by a small RRDBNet (nf 8, gc 8, nb 1: what is measured is the OME path's
memory and overhead, not the network) into an OME-Zarr image with a 4-level pyramid, on the
threaded executor. Each run is a fresh subprocess after its imports and model load, so its peak
RSS (``ru_maxrss``) is its own. Prints a Markdown table with the CPU, its flags, threads and load.

    python bench/bench_ome.py [--sizes 512 1536] [--chunk 256] [--levels 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from esrgan_plugin.device import cpu_info

PIPELINE = """
steps:
  - {{id: src, uses: builtin.read, with: {{path: "{src}"}}}}
  - {{id: sr, uses: esrgan.upscale, with: {{model: "{model}", tile: 0, halo: 20, batch_size: 1, precision: fp32, device: cpu}}}}
  - {{id: out, uses: builtin.write, with: {{path: "{out}", levels: {levels}}}}}
"""


def cpu_line() -> str:
    """CPU model, the flags that matter for inference, threads and load average."""
    info = cpu_info()
    model, flags = info.model, info.flags
    wanted = [f for f in ("avx512_bf16", "amx_bf16", "avx512_vnni") if f in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{model}; flags: {', '.join(wanted) or 'none of avx512_bf16/amx/avx512_vnni'}; "
        f"{os.cpu_count()} cores, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}; "
        f"load {load:.2f} (shared machine)"
    )


def make_inputs(folder: Path, size: int, chunk: int) -> tuple[Path, Path]:
    """The model and a smooth synthetic (c, y, x) uint16 OME-Zarr image of ``size`` pixels."""
    import torch
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
    from esrgan_plugin.models.loading import save_model

    torch.manual_seed(0)
    model = save_model(
        folder / "m.safetensors",
        RRDBNet(RRDBNetConfig.for_scale(4, num_features=8, growth_channels=8, num_blocks=1)),
    )
    y = np.arange(size, dtype=np.float32)[:, None]
    x = np.arange(size, dtype=np.float32)[None, :]
    planes = np.stack(
        [2000 + 1500 * np.sin(x / (31 + 7 * c)) * np.cos(y / (47 - 5 * c)) for c in range(3)]
    ).astype(np.uint16)
    src = folder / f"in_{size}.ome.zarr"
    write_image(
        planes,
        zarr.open_group(str(src), mode="w"),
        axes="cyx",
        fmt=FormatV05(),
        scale_factors=(2,),
        storage_options={"chunks": (3, chunk, chunk)},
    )
    return model, src


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measured run, in this (fresh) process."""
    from esrgan_plugin.options import UpscaleParams
    from esrgan_plugin.stages import upscale
    from pipelines.testing import run_text

    upscale(
        np.zeros((64, 64, 3), np.float32),
        UpscaleParams(model=args.model, tile=0, halo=20, precision="fp32", device="cpu"),
    )
    text = PIPELINE.format(src=args.src, model=args.model, out=args.out, levels=args.levels)
    start = time.perf_counter()
    run_text(text, entry_points=True)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1536])
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes:
            model, src = make_inputs(folder, size, args.chunk)
            out = folder / f"out_{size}.ome.zarr"
            command = [
                sys.executable,
                __file__,
                "--child",
                "--src",
                str(src),
                "--model",
                str(model),
            ]
            command += ["--out", str(out), "--levels", str(args.levels)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"run at {size} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["size"] = size
            rows.append(result)
            print(f"  {size}: {result['seconds']:.1f} s", file=sys.stderr, flush=True)
    print(
        f"\n#### OME-Zarr x4, (c, y, x) uint16 3 channels, {args.chunk}-px chunks, {args.levels} levels out\n"
    )
    print(cpu_line() + "\n")
    print("| input | level 0 out | wall s | output MPix/s (level 0) | peak RSS MiB |")
    print("| --- | --- | ---: | ---: | ---: |")
    for r in rows:
        side = 4 * r["size"]
        mpix = side * side / r["seconds"] / 1e6
        print(
            f"| 3x{r['size']}x{r['size']} | 3x{side}x{side} | {r['seconds']:.1f} | {mpix:.2f} | {r['rss_mib']:.0f} |"
        )
    small, big = rows[0], rows[-1]
    ratio = big["rss_mib"] / small["rss_mib"]
    print(
        f"\nPeak RSS at {big['size']} / at {small['size']}: {ratio:.2f}x for "
        f"{(big['size'] / small['size']) ** 2:.0f}x the pixels (target: within 1.25x)"
    )


if __name__ == "__main__":
    main()
