"""Zarr-to-Zarr x4 benchmark: wall time, throughput and peak memory as the image grows.

A small RRDBNet x4 (default nf 8, gc 8, nb 1: the network's cost does not change what is
measured, Dask's overhead and memory) upscales a 1024x1024 and a 4096x4096 Zarr image into a
Zarr array (4096 -> 16384x16384) through a YAML pipeline, on the threaded scheduler and on a
2-process LocalCluster; the plain in-process tiled path (``Upscaler`` with the same tiles and
halo, no I/O) is the throughput reference, run interleaved with the Dask path (fastest of
``--repeats`` each, as other processes may share the CPU). Each run is a fresh subprocess, so peak RSS
(``ru_maxrss``) is its own; worker peaks come from the workers. Prints Markdown tables.

    python bench/bench_zarr.py [--sizes 1024 4096] [--block 512] [--halo 20] [--nf 8 --gc 8 --nb 1] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PIPELINE = """
executor: {executor}
steps:
  - {{id: src, uses: builtin.read, with: {{path: "{src}"}}}}
  - {{id: sr, uses: esrgan.upscale, with: {{model: "{model}", tile: 0, halo: {halo}, batch_size: 1, precision: fp32, device: cpu}}}}
  - {{id: out, uses: builtin.write, with: {{path: "{out}"}}}}
"""


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_model(path: Path, nf: int, gc: int, nb: int) -> Path:
    import torch

    from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
    from esrgan_plugin.models.loading import save_model

    torch.manual_seed(0)
    return save_model(
        path,
        RRDBNet(RRDBNetConfig.for_scale(4, num_features=nf, growth_channels=gc, num_blocks=nb)),
    )


def make_input(path: Path, size: int, block: int) -> Path:
    """A smooth synthetic RGB image (compresses like a photo, unlike noise), written block by block."""
    import zarr

    z = zarr.create_array(
        str(path), shape=(size, size, 3), chunks=(block, block, 3), dtype="uint8", overwrite=True
    )
    for top in range(0, size, block):
        y = np.arange(top, min(top + block, size), dtype=np.float32)[:, None, None]
        x = np.arange(size, dtype=np.float32)[None, :, None]
        phase = np.array([0.0, 2.1, 4.2], dtype=np.float32)
        rows = (
            127.5
            + 60 * np.sin(x / 37 + phase) * np.cos(y / 53 - phase)
            + 60 * np.sin((x + y) / 211 + phase)
        )
        z[top : top + rows.shape[0]] = np.clip(rows, 0, 255).astype(np.uint8)
    return path


# --------------------------------------------------------------------------- one run (in a subprocess)


def warm_up(model: str, halo: int) -> None:
    """Load the model and import the array stack, so timing starts with a warm process.

    The plain path's timing excludes its imports and model load; the pipeline's must too.
    """
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
    import zarr  # noqa: F401

    import pipelines.io.zarr_sink  # noqa: F401
    import pipelines.io.zarr_source  # noqa: F401
    from esrgan_plugin.options import UpscaleParams
    from esrgan_plugin.stages import upscale

    upscale(
        np.zeros((64, 64, 3), np.uint8),
        UpscaleParams(model=model, tile=0, halo=halo, batch_size=1, precision="fp32", device="cpu"),
    )


def run_yaml(text: str, workdir: Path) -> float:
    from pipelines.config.loader import load_config
    from pipelines.config.validation import validate
    from pipelines.hooks.manager import build_registry, get_plugin_manager
    from pipelines.runner.run import run_pipeline

    path = workdir / "job.yaml"
    path.write_text(text, encoding="utf-8")
    pm = get_plugin_manager()
    pipeline = validate(load_config(str(path)), build_registry(pm))
    start = time.perf_counter()
    run_pipeline(pipeline, pm)
    return time.perf_counter() - start


def child(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    workdir, src, out = Path(args.workdir), Path(args.src), Path(args.out)
    result: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    if args.child == "plain":
        import zarr

        from esrgan_plugin.inference import UpscaleOptions, Upscaler
        from esrgan_plugin.models.loading import load_model

        image = zarr.open_array(str(src), mode="r")[...]
        upscaler = Upscaler(
            load_model(args.model),
            UpscaleOptions(
                tile=args.block, halo=args.halo, batch_size=1, precision="fp32", device="cpu"
            ),
        )
        upscaler.upscale(np.zeros((64, 64, 3), np.uint8))
        start = time.perf_counter()
        upscaler.upscale(image)
        result["seconds"] = time.perf_counter() - start
    elif args.child == "threads":
        warm_up(args.model, args.halo)
        text = PIPELINE.format(
            executor="threads", src=src, model=args.model, halo=args.halo, out=out
        )
        result["seconds"] = run_yaml(text, workdir)
    else:
        from distributed import Client, LocalCluster

        from pipelines.runner.executors import worker_thread_env

        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                env=worker_thread_env(2),
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(warm_up, args.model, args.halo)
            text = PIPELINE.format(
                executor=cluster.scheduler_address,
                src=src,
                model=args.model,
                halo=args.halo,
                out=out,
            )
            result["seconds"] = run_yaml(text, workdir)
            result["worker_rss_mib"] = sorted(client.run(peak_rss_mib).values())
            result["torch_threads"] = client.run(torch.get_num_threads)
    result["rss_mib"] = peak_rss_mib()
    return result


# --------------------------------------------------------------------------- driver


def run_child(
    mode: str, size: int, src: Path, model: Path, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    out = workdir / f"out_{mode}_{size}.zarr"
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--src",
        str(src),
        "--out",
        str(out),
        "--model",
        str(model),
        "--workdir",
        str(workdir),
        "--block",
        str(args.block),
        "--halo",
        str(args.halo),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run at {size} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(mode=mode, size=size, mpix_s=(4 * size) ** 2 / result["seconds"] / 1e6)
    print(f"  {mode:8s} {size:5d}: {result['seconds']:.1f} s", file=sys.stderr, flush=True)
    return result


def print_tables(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    names = {
        "plain": "in-process tiled `Upscaler` (no I/O)",
        "threads": "Zarr -> Zarr, Dask threads",
        "cluster": "Zarr -> Zarr, LocalCluster 2 x 1",
    }
    print(
        f"\n### Zarr-to-Zarr x4, RRDBNet nf {args.nf} gc {args.gc} nb {args.nb}, blocks {args.block} px, halo {args.halo}, "
        f"fp32, CPU ({platform.processor() or platform.machine()})\n"
    )
    print(_machine() + "\n")
    print(
        "| input | output | path | wall s | output MPix/s | peak RSS MiB (process) | peak RSS MiB (workers) |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    for r in results:
        workers = ", ".join(f"{w:.0f}" for w in r.get("worker_rss_mib", [])) or "-"
        side = 4 * r["size"]
        print(
            f"| {r['size']}x{r['size']} | {side}x{side} | {names[r['mode']]} | {r['seconds']:.1f} | {r['mpix_s']:.2f} | "
            f"{r['rss_mib']:.0f} | {workers} |"
        )
    by = {(r["mode"], r["size"]): r for r in results}
    small, big = min(args.sizes), max(args.sizes)
    print("\n| target | measured | met |")
    print("| --- | ---: | --- |")
    for mode in ("threads", "cluster"):
        if (mode, small) in by and (mode, big) in by:
            key = "rss_mib" if mode == "threads" else "worker_rss_mib"
            a, b = (max(np.atleast_1d(by[(mode, s)][key])) for s in (small, big))
            print(
                f"| peak RSS at {big} within 1.25x of {small} ({names[mode]}) | {b / a:.2f}x | {'yes' if b / a <= 1.25 else 'no'} |"
            )
    if ("plain", small) in by and ("threads", small) in by:
        ratio = by[("threads", small)]["mpix_s"] / by[("plain", small)]["mpix_s"]
        print(
            f"| Dask-path throughput within 15% of the plain tiled path ({small}) | {ratio:.2f}x | {'yes' if ratio >= 0.85 else 'no'} |"
        )


def _machine() -> str:
    """CPU model, bf16/int8 flags, torch threads and load (issue 13: every table says them)."""
    import os

    import torch

    from esrgan_plugin.device import cpu_info

    info = cpu_info()
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info.relevant_flags.items())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"CPU {info.model} ({info.cores} cores; {flags}); {torch.get_num_threads()} torch threads; "
        f"load {load:.1f} (1-min average; shared machine, figures noisy)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument(
        "--block",
        type=int,
        default=512,
        help="input block (Zarr chunk) side; also the plain path's tile",
    )
    parser.add_argument(
        "--halo",
        type=int,
        default=20,
        help="input pixels of context (>= the model's receptive radius, 19)",
    )
    parser.add_argument("--nf", type=int, default=8)
    parser.add_argument("--gc", type=int, default=8)
    parser.add_argument("--nb", type=int, default=1)
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="runs of the plain and Dask paths at the smallest size",
    )
    parser.add_argument(
        "--workdir", default=None, help="where inputs and outputs go (default: a temporary folder)"
    )
    parser.add_argument("--child", choices=("plain", "threads", "cluster"), help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_zarr_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        model = make_model(workdir / "small.safetensors", args.nf, args.gc, args.nb)
        results = []
        for size in sorted(args.sizes):
            src = make_input(workdir / f"in_{size}.zarr", size, args.block)
            if size == min(
                args.sizes
            ):  # the throughput comparison: interleaved, the fastest of each kept
                runs = [
                    run_child(m, size, src, model, workdir, args)
                    for _ in range(args.repeats)
                    for m in ("plain", "threads")
                ]
                results += [
                    min((r for r in runs if r["mode"] == m), key=lambda r: r["seconds"])
                    for m in ("plain", "threads")
                ]
                results.append(run_child("cluster", size, src, model, workdir, args))
            else:
                results += [
                    run_child(mode, size, src, model, workdir, args)
                    for mode in ("threads", "cluster")
                ]
        print_tables(results, args)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
