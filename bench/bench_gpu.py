"""GPU check: precision, layout, batched tiles, the real OOM back-off, torch.compile, Dask per GPU.

    make bench-gpu                                   # python bench/bench_gpu.py
    python bench/bench_gpu.py [--device cuda:0] [--model realesrgan-x4plus] [--size 256]
                              [--repeats 3] [--skip compile,dask]
    python bench/bench_gpu.py --device cpu --smoke   # every code path on a tiny model, on the CPU

On a CUDA device, for the full model on real weights (the catalogue's ``realesrgan-x4plus``;
random weights, labelled, when it is not installed) it measures and prints as Markdown tables:

- ``precision``: fp32, fp16 and bf16 (autocast, channels_last, cudnn.benchmark) throughput
  and accuracy (PSNR, max abs error) against CPU fp32 on the same input;
- ``layout``: channels_last and cudnn.benchmark on/off, raw forward on a fixed tile batch;
- ``tiles``: batched tiles (batch 1/4/8) on a larger input, peak memory, equality across batches;
- ``oom``: the real out-of-memory back-off: the whole-image side doubled until the allocator
  fails (then halved back: the largest side that fits, and the measured bytes per pixel
  against the engine's estimate), then the free memory filled with ballast until the
  allocator fails, enough released to leave a little headroom, and ``Upscaler`` asked for the
  whole image: the tiles it tried on the way down, and that its output equals a plain run at
  the tile it settled on;
- ``compile``: ``torch.compile`` on one fixed tile shape against eager (compile seconds,
  steady-state speed-up, a second shape's recompile);
- ``dask``: a Zarr -> Zarr pipeline on a cluster with one worker per GPU (dask-cuda's
  ``LocalCUDACluster`` when installed, else one Nanny per GPU with ``CUDA_VISIBLE_DEVICES``).

Every table comes with the date, GPU name(s), torch/CUDA/cuDNN versions and the CPU.
Without CUDA (and without ``--device cpu``) it prints one line and exits 0. ``--smoke`` runs
the same code on a tiny random model and small inputs; on the CPU the OOM section uses a
simulated memory budget (labelled) since a CPU allocation failure would take the machine down.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esrgan_plugin.device import cpu_info

SECTIONS = ("precision", "layout", "tiles", "oom", "compile", "dask")
DEFAULT_MODEL = "realesrgan-x4plus"
MAX_PROBE_SIDE = 8192
"""The OOM probe stops doubling here (a 32k x 32k x4 output would not fit in host memory)."""
BACKOFF_SIDE = 4096
"""Largest whole image the back-off run asks for (with 4 GiB free it cannot fit at x4)."""


@dataclass(frozen=True)
class BenchConfig:
    """What to run, from the command line; ``smoke`` shrinks everything to seconds."""

    device: str = "auto"
    smoke: bool = False
    model: str = DEFAULT_MODEL
    size: int = 256
    """Side of the precision/accuracy input (CPU fp32 is the reference, so keep it modest)."""
    tile: int = 256
    halo: int = 16
    tiled_size: int = 1024
    batches: tuple[int, ...] = (1, 4, 8)
    repeats: int = 3
    headroom_mib: int = 4096
    """Free memory left beside the ballast in the OOM back-off run."""
    skip: frozenset[str] = frozenset()

    @classmethod
    def smoke_config(cls, device: str, skip: frozenset[str] = frozenset()) -> BenchConfig:
        return cls(
            device=device,
            smoke=True,
            model="tiny",
            size=24,
            tile=16,
            halo=4,
            tiled_size=40,
            batches=(1, 4),
            repeats=2,
            headroom_mib=1,
            skip=skip,
        )


@dataclass
class Table:
    """One printed table: a title, column names, rows of cells, notes under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"#### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("| " + " | ".join("---" for _ in self.columns) + " |")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + self.notes if self.notes else []
        return "\n".join(lines)


@dataclass
class Bench:
    """The model, the device and the settings every section shares."""

    config: BenchConfig
    device: torch.device
    model: Any  # LoadedModel
    model_ref: str
    """What a pipeline's ``model:`` parameter should say (catalogue name or a file path)."""
    label: str
    workdir: Path


# --------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> str:
    if device.type != "cuda":
        return "-"
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f}"


def interleaved(
    runs: dict[str, Callable[[], Any]], device: torch.device, repeats: int
) -> dict[str, float]:
    """Median seconds of each run, the runs interleaved round by round after one warm-up each."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1] (clamped first, as images are written)."""
    x = torch.as_tensor(a).float().clamp(0, 1)
    y = torch.as_tensor(b).float().clamp(0, 1)
    mse = float(torch.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def max_abs_255(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().clamp(0, 1) - b.float().clamp(0, 1)).abs().max()) * 255


def test_image(side: int, channels: int = 3) -> torch.Tensor:
    """A (1, C, side, side) float image: scikit-image's astronaut, tiled/cropped to ``side``."""
    from skimage import data

    photo = data.astronaut().astype(np.float32) / 255
    reps = math.ceil(side / photo.shape[0])
    photo = np.tile(photo, (reps, reps, 1))[:side, :side, :channels]
    return torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))[None]


def fmt(seconds: float) -> str:
    return f"{seconds:.4f}" if seconds < 1 else f"{seconds:.2f}"


def mpix(pixels: int, seconds: float) -> str:
    return f"{pixels / seconds / 1e6:.2f}"


# --------------------------------------------------------------------------- setup


def environment(device: torch.device) -> list[str]:
    """Date, GPU(s), versions and CPU: printed above every run's tables."""
    lines = [f"date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}"]
    if device.type == "cuda":
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(
                f"GPU {i}: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                f"compute capability {props.major}.{props.minor}"
            )
        lines.append(
            f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"cuDNN {torch.backends.cudnn.version()}"
        )
    else:
        lines.append(f"device: {device} (no GPU; a smoke run of the code paths)")
        lines.append(f"torch {torch.__version__}")
    lines.append(
        f"CPU: {cpu_model()} ({cpu_flags()}), {os.cpu_count()} logical cores, torch threads "
        f"{torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}"
    )
    return lines


def cpu_model() -> str:
    return cpu_info().model


def cpu_flags() -> str:
    """The CPU flags that decide low-precision speed (the benchmark rules ask for them)."""
    present = cpu_info().flags
    if not present:
        return "flags unknown"
    wanted = ("avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni")
    return " ".join(f for f in wanted if f in present) or "no bf16/vnni/amx flags"


def load_bench_model(config: BenchConfig, workdir: Path) -> tuple[Any, str, str]:
    """(LoadedModel, model reference for a pipeline, label): real weights when installed."""
    from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
    from esrgan_plugin.errors import EsrganError
    from esrgan_plugin.models.loading import build_from_state_dict, load_model, save_model

    if config.smoke:
        net = RRDBNet(RRDBNetConfig(num_features=8, num_blocks=1, growth_channels=4))
        label = "tiny random RRDBNet x4 (nf 8, nb 1, gc 4): smoke run, figures mean nothing"
    else:
        try:
            model = load_model(config.model)
            return model, config.model, f"{config.model} (real weights, {model.architecture})"
        except EsrganError as exc:
            net = RRDBNet(RRDBNetConfig())
            label = f"RANDOM weights, full RRDBNet x4 (nf 64, nb 23): {config.model} unavailable ({exc})"
    torch.manual_seed(0)
    path = save_model(workdir / "bench-model.safetensors", net)
    return build_from_state_dict(dict(net.state_dict())), str(path), label


def upscaler(bench: Bench, **options: Any) -> Any:
    from esrgan_plugin.inference import UpscaleOptions, Upscaler

    options.setdefault("device", str(bench.device))
    return Upscaler(bench.model, UpscaleOptions(**options))


def low_precisions(device: torch.device) -> list[str]:
    return ["fp32", "fp16", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]


def fast_precision(device: torch.device) -> str:
    return "fp16" if device.type == "cuda" else "fp32"


# --------------------------------------------------------------------------- sections


def precision_section(bench: Bench) -> Table:
    """fp32/fp16/bf16 on the device against CPU fp32, whole image, channels_last, cudnn.benchmark."""
    cfg, device = bench.config, bench.device
    x = test_image(cfg.size, bench.model.in_channels)
    torch.backends.cudnn.benchmark = True
    reference = upscaler(bench, device="cpu", precision="fp32", tile=0).upscale_tensor(x)
    engines = {p: upscaler(bench, precision=p, tile=0) for p in low_precisions(device)}
    tf32 = {name: False for name in engines}
    if device.type == "cuda":  # cuDNN runs fp32 convs in TF32 unless told not to
        engines = {"fp32": engines["fp32"], "fp32 (TF32 convs)": engines["fp32"], **engines}
        tf32 = {name: name == "fp32 (TF32 convs)" for name in engines}
    outputs: dict[str, torch.Tensor] = {}
    peaks: dict[str, str] = {}

    def run(name: str) -> Callable[[], None]:
        def go() -> None:
            torch.backends.cudnn.allow_tf32 = tf32[name]
            torch.backends.cuda.matmul.allow_tf32 = tf32[name]
            outputs[name] = engines[name].upscale_tensor(x)

        return go

    for name in engines:
        reset_peak(device)
        run(name)()
        peaks[name] = peak_mib(device)
    seconds = interleaved({p: run(p) for p in engines}, device, cfg.repeats)
    out_pixels = x.shape[-1] * x.shape[-2] * bench.model.scale**2
    table = Table(
        f"Precision on {device}, {cfg.size}x{cfg.size} input, whole image, median of {cfg.repeats}",
        [
            "precision",
            "seconds",
            "output MPix/s",
            "vs fp32",
            "PSNR vs CPU fp32",
            "max abs err (x255)",
            "peak MiB",
        ],
    )
    for name in engines:
        table.rows.append(
            [
                name,
                fmt(seconds[name]),
                mpix(out_pixels, seconds[name]),
                f"{seconds['fp32'] / seconds[name]:.2f}x",
                f"{psnr(outputs[name], reference):.1f} dB",
                f"{max_abs_255(outputs[name], reference):.3f}",
                peaks[name],
            ]
        )
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's defaults again
    torch.backends.cuda.matmul.allow_tf32 = False
    if device.type != "cuda":
        table.notes.append("fp16 is refused on the CPU; on CUDA the table has fp32, fp16 and bf16.")
    else:
        table.notes.append(
            "fp32 is strict fp32 (allow_tf32 off); 'TF32 convs' is PyTorch's default for cuDNN."
        )
    table.notes.append("Times include the copy of the output back to the CPU.")
    return table


def layout_section(bench: Bench) -> Table:
    """Raw forward of one fixed tile batch: channels_last x cudnn.benchmark."""
    cfg, device = bench.config, bench.device
    precision = fast_precision(device)
    side = cfg.tile + 2 * cfg.halo
    batch = max(cfg.batches)
    x = torch.rand(batch, bench.model.in_channels, side, side, device=device)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    modules = {
        "contiguous": copy.deepcopy(bench.model.module).to(device).eval(),
        "channels_last": copy.deepcopy(bench.model.module)
        .to(device)
        .eval()
        .to(memory_format=torch.channels_last),
    }
    inputs = {"contiguous": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}
    results: dict[tuple[str, bool], float] = {}
    for benchmark in (False, True):
        torch.backends.cudnn.benchmark = benchmark

        def forward(layout: str) -> Callable[[], None]:
            def go() -> None:
                with torch.inference_mode(), autocast(device, dtype):
                    modules[layout](inputs[layout])

            return go

        seconds = interleaved({k: forward(k) for k in modules}, device, cfg.repeats)
        for layout, value in seconds.items():
            results[(layout, benchmark)] = value
    base = results[("contiguous", False)]
    table = Table(
        f"Memory layout and cudnn.benchmark, {precision}, batch {batch} of {side}x{side} tiles",
        ["layout", "cudnn.benchmark", "seconds", "input MPix/s", "vs contiguous, no benchmark"],
    )
    pixels = batch * side * side
    for (layout, benchmark), value in results.items():
        table.rows.append(
            [
                layout,
                "on" if benchmark else "off",
                fmt(value),
                mpix(pixels, value),
                f"{base / value:.2f}x",
            ]
        )
    torch.backends.cudnn.benchmark = True
    if device.type != "cuda":
        table.notes.append("cudnn.benchmark has no effect on the CPU.")
    return table


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def tiles_section(bench: Bench) -> Table:
    """Batched tiles against the whole image on a larger input."""
    cfg, device = bench.config, bench.device
    precision = fast_precision(device)
    x = test_image(cfg.tiled_size, bench.model.in_channels)
    runs = {f"tile {cfg.tile}, halo {cfg.halo}, batch {b}": b for b in cfg.batches}
    engines = {
        name: upscaler(bench, precision=precision, tile=cfg.tile, halo=cfg.halo, batch_size=b)
        for name, b in runs.items()
    }
    engines["whole image"] = upscaler(bench, precision=precision, tile=0)
    outputs: dict[str, torch.Tensor] = {}
    peaks: dict[str, str] = {}

    def run(name: str) -> Callable[[], None]:
        def go() -> None:
            outputs[name] = engines[name].upscale_tensor(x)

        return go

    for name in engines:
        reset_peak(device)
        run(name)()
        peaks[name] = peak_mib(device)
    seconds = interleaved({name: run(name) for name in engines}, device, cfg.repeats)
    first = next(iter(runs))
    out_pixels = cfg.tiled_size**2 * bench.model.scale**2
    table = Table(
        f"Batched tiles, {precision}, {cfg.tiled_size}x{cfg.tiled_size} input on {device}, "
        f"median of {cfg.repeats}",
        [
            "run",
            "seconds",
            "output MPix/s",
            "peak MiB",
            f"max abs diff vs {first} (x255)",
            "PSNR vs whole image",
        ],
    )
    for name in engines:
        table.rows.append(
            [
                name,
                fmt(seconds[name]),
                mpix(out_pixels, seconds[name]),
                peaks[name],
                f"{max_abs_255(outputs[name], outputs[first]):.3f}",
                f"{psnr(outputs[name], outputs['whole image']):.1f} dB",
            ]
        )
    return table


class SimulatedBudget:
    """Raises the allocator's own error when a forward's input exceeds a pixel budget (CPU smoke)."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], pixels: int) -> None:
        self.forward = forward
        self.pixels = pixels

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.shape[0] * batch.shape[-1] * batch.shape[-2] > self.pixels:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory (budget exceeded)")
        return self.forward(batch)


def largest_whole_side(bench: Bench, precision: str, start: int) -> tuple[int, int, float]:
    """Double the whole-image side until the allocator fails; (largest side that ran, first failing side, peak bytes per LR pixel)."""
    from esrgan_plugin.device import is_out_of_memory

    engine = upscaler(bench, precision=precision, tile=0)
    if bench.device.type != "cuda":
        engine._forward = SimulatedBudget(engine._forward, pixels=(4 * start) ** 2)
    side, fitted, per_pixel = start, 0, 0.0
    while True:
        x = torch.rand(1, bench.model.in_channels, side, side)
        reset_peak(bench.device)
        try:
            engine._forward(x)
            sync(bench.device)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            del x
            engine._release_cache()
            return fitted, side, per_pixel
        if bench.device.type == "cuda":
            per_pixel = torch.cuda.max_memory_allocated(bench.device) / side**2
        fitted = side
        if side >= MAX_PROBE_SIDE:
            return fitted, 0, per_pixel
        side *= 2


@contextlib.contextmanager
def ballast(device: torch.device, leave_bytes: int) -> Iterator[int]:
    """Fill the device with 256 MiB blocks until the allocator fails, then free enough to leave ``leave_bytes``."""
    blocks: list[torch.Tensor] = []
    chunk = 256 << 20
    try:
        while True:
            try:
                blocks.append(torch.empty(chunk, dtype=torch.uint8, device=device))
            except torch.OutOfMemoryError:
                break
        freed = 0
        while blocks and freed < leave_bytes:
            blocks.pop()
            freed += chunk
        torch.cuda.empty_cache()
        yield len(blocks) * chunk
    finally:
        blocks.clear()
        torch.cuda.empty_cache()


class TileLog(logging.Handler):
    """Collects the engine's 'retrying with tile N' warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def oom_section(bench: Bench) -> Table:
    """The real OOM back-off: largest whole image, then a whole image that cannot fit."""
    cfg, device = bench.config, bench.device
    precision = fast_precision(device)
    simulated = device.type != "cuda"
    start = 16 if cfg.smoke else 256
    fitted, failed, per_pixel = largest_whole_side(bench, precision, start)
    estimate = upscaler(bench, precision=precision, tile=0).bytes_per_pixel()
    table = Table(
        f"Out-of-memory back-off, {precision} on {device}"
        + (" (SIMULATED budget: CPU smoke run)" if simulated else ""),
        ["measurement", "value"],
    )
    failure = f"failed at {failed}" if failed else f"no failure up to {MAX_PROBE_SIDE}"
    table.rows.append(
        ["whole-image side doubled until the allocator failed", f"ran {fitted}, {failure}"]
    )
    if not simulated:
        table.rows.append(
            [
                "peak bytes per LR pixel at that side (measured / engine estimate)",
                f"{per_pixel:,.0f} / {estimate:,}",
            ]
        )
    # A whole image that needs several times the memory left free: the engine must back off.
    side = max(4 * cfg.tile, fitted) if simulated else min(max(fitted, cfg.tile), BACKOFF_SIDE)
    x = test_image(side, bench.model.in_channels)
    engine = upscaler(bench, precision=precision, tile=0, halo=cfg.halo)
    handler = TileLog()
    logger = logging.getLogger("esrgan_plugin.tiled_upscaler")
    logger.addHandler(handler)
    held: contextlib.AbstractContextManager[int]
    try:
        if simulated:
            engine._forward = SimulatedBudget(
                engine._forward, pixels=(cfg.tile + 2 * cfg.halo) ** 2
            )
            held = contextlib.nullcontext(0)
        else:
            held = ballast(device, cfg.headroom_mib << 20)
        with held as ballast_bytes:
            start_time = time.perf_counter()
            out = engine.upscale_tensor(x)
            seconds = time.perf_counter() - start_time
    finally:
        logger.removeHandler(handler)
    tiles = [m.rsplit(" ", 1)[-1] for m in handler.messages if "retrying with tile" in m]
    final_tile = int(tiles[-1]) if tiles else 0
    plain = upscaler(bench, precision=precision, tile=final_tile, halo=cfg.halo)
    if simulated:
        plain._forward = SimulatedBudget(
            plain._forward, pixels=(final_tile + 2 * cfg.halo) ** 2 * 64
        )
    reference = plain.upscale_tensor(x)
    if not simulated:
        table.rows.append(["ballast held while upscaling", f"{ballast_bytes / 2**30:.1f} GiB"])
    table.rows += [
        [f"{side}x{side} whole image asked for: tiles tried", " -> ".join(["whole", *tiles])],
        ["finished", f"yes, {fmt(seconds)} s" if out is not None else "no"],
        [
            f"max abs diff vs a plain run at tile {final_tile} (x255)",
            f"{max_abs_255(out, reference):.3f}",
        ],
    ]
    table.notes.append(
        "Batched tiles (batch 4) of half the side need as much memory as the whole image, so the "
        "first halving rarely suffices."
    )
    return table


def compile_section(bench: Bench) -> Table:
    """torch.compile on one fixed tile-batch shape against eager, and what a new shape costs."""
    cfg, device = bench.config, bench.device
    precision = fast_precision(device)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    side = cfg.tile + 2 * cfg.halo
    batch = max(cfg.batches)
    module = (
        copy.deepcopy(bench.model.module).to(device).eval().to(memory_format=torch.channels_last)
    )
    backend = "eager" if device.type != "cuda" else "inductor"
    compiled = torch.compile(module, backend=backend, dynamic=False)
    x = torch.rand(batch, bench.model.in_channels, side, side, device=device).contiguous(
        memory_format=torch.channels_last
    )

    def call(net: Callable[[torch.Tensor], torch.Tensor], inp: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(device, dtype):
            return net(inp)

    sync(device)
    start = time.perf_counter()
    first = call(compiled, x)
    sync(device)
    compile_seconds = time.perf_counter() - start
    seconds = interleaved(
        {"eager": lambda: call(module, x), "compiled": lambda: call(compiled, x)},
        device,
        cfg.repeats,
    )
    diff = max_abs_255(first, call(module, x))
    table = Table(
        f"torch.compile ({backend}), {precision}, fixed shape: batch {batch} of {side}x{side} tiles",
        ["run", "seconds per batch", "input MPix/s", "vs eager"],
    )
    pixels = batch * side * side
    table.rows += [
        ["eager", fmt(seconds["eager"]), mpix(pixels, seconds["eager"]), "1.00x"],
        [
            "compiled",
            fmt(seconds["compiled"]),
            mpix(pixels, seconds["compiled"]),
            f"{seconds['eager'] / seconds['compiled']:.2f}x",
        ],
    ]
    table.notes += [
        f"First call (compilation) {compile_seconds:.1f} s; compiled vs eager max abs diff "
        f"{diff:.3f}/255. With dynamic=False every other tile shape (edge tiles, another batch "
        "size) compiles again, so this pays only when all tiles share one shape.",
    ]
    if backend == "eager":
        table.notes.append(
            "CPU smoke: the 'eager' backend traces the graph without code generation."
        )
    return table


def dask_section(bench: Bench) -> Table:
    """A Zarr -> Zarr pipeline with one Dask worker per GPU."""
    import zarr

    cfg, device = bench.config, bench.device
    precision = fast_precision(device)
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    workers = max(gpus, 1)
    side = 2 * cfg.tiled_size * workers  # at least four chunks per worker
    src, out = bench.workdir / "src.zarr", bench.workdir / "out.zarr"
    image = (test_image(side, bench.model.in_channels)[0].permute(1, 2, 0).numpy() * 255).round()
    array = zarr.create_array(
        str(src),
        shape=image.shape,
        chunks=(cfg.tiled_size, cfg.tiled_size, image.shape[2]),
        dtype="uint8",
        overwrite=True,
    )
    array[...] = image.astype(np.uint8)
    device_name = "auto" if device.type == "cuda" else "cpu"
    with worker_cluster(gpus) as (address, kind, client):
        visible = client.run(_worker_device)
        text = PIPELINE.format(
            executor=address,
            src=src,
            out=out,
            model=bench.model_ref,
            tile=cfg.tile,
            halo=cfg.halo,
            precision=precision,
            device=device_name,
        )
        client.run(_warm_up, bench.model_ref, precision, device_name)
        seconds = run_yaml(text, bench.workdir)
    result = zarr.open_array(str(out), mode="r")
    expected = (side * bench.model.scale, side * bench.model.scale, image.shape[2])
    table = Table(
        f"Dask, one worker per GPU ({kind}), {side}x{side} Zarr -> Zarr, {precision}",
        ["workers", "worker devices", "seconds", "output MPix/s", "output shape ok"],
    )
    table.rows.append(
        [
            str(len(visible)),
            "; ".join(sorted(visible.values())),
            fmt(seconds),
            mpix(side * side * bench.model.scale**2, seconds),
            "yes" if result.shape == expected else f"no: {result.shape}",
        ]
    )
    if gpus == 0:
        table.notes.append("No GPU: one CPU worker with CUDA_VISIBLE_DEVICES empty (smoke).")
    return table


PIPELINE = """
executor: {executor}
steps:
  - {{id: src, uses: builtin.read, with: {{path: "{src}"}}}}
  - {{id: sr, uses: esrgan.upscale, with: {{model: "{model}", tile: {tile}, halo: {halo}, precision: {precision}, device: {device}}}}}
  - {{id: out, uses: builtin.write, with: {{path: "{out}"}}}}
"""


def _worker_device() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"CUDA_VISIBLE_DEVICES={visible}: {name}"


def _warm_up(model: str, precision: str, device: str) -> None:
    from esrgan_plugin.options import UpscaleParams
    from esrgan_plugin.stages import upscale

    upscale(
        np.zeros((32, 32, 3), np.uint8),
        UpscaleParams(model=model, tile=0, precision=precision, device=device),
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


@contextlib.contextmanager
def worker_cluster(gpus: int) -> Iterator[tuple[str, str, Any]]:
    """(scheduler address, kind, client) of a cluster with one single-threaded worker per GPU."""
    import cloudpickle
    from distributed import Client, LocalCluster

    if __name__ != "__main__":  # imported (tests): workers cannot import this script by name
        cloudpickle.register_pickle_by_value(sys.modules[__name__])

    quiet = {"dashboard_address": ":0", "silence_logs": logging.CRITICAL}
    if gpus:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            LocalCUDACluster = None  # noqa: N806
        if LocalCUDACluster is not None:
            with (
                LocalCUDACluster(n_workers=gpus, threads_per_worker=1, **quiet) as cluster,
                Client(cluster) as client,
            ):
                yield cluster.scheduler_address, "dask-cuda LocalCUDACluster", client
            return
        from distributed import Nanny, Scheduler, SpecCluster

        workers = {
            i: {"cls": Nanny, "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": str(i)}}}
            for i in range(gpus)
        }
        scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
        with (
            SpecCluster(
                workers=workers, scheduler=scheduler, silence_logs=logging.CRITICAL
            ) as cluster,
            Client(cluster) as client,
        ):
            yield cluster.scheduler_address, "Nanny per GPU with CUDA_VISIBLE_DEVICES", client
        return
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, env={"CUDA_VISIBLE_DEVICES": ""}, **quiet
        ) as cluster,
        Client(cluster) as client,
    ):
        yield cluster.scheduler_address, "LocalCluster, 1 CPU worker", client


RUNNERS: dict[str, Callable[[Bench], Table]] = {
    "precision": precision_section,
    "layout": layout_section,
    "tiles": tiles_section,
    "oom": oom_section,
    "compile": compile_section,
    "dask": dask_section,
}


# --------------------------------------------------------------------------- driver


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", default="auto", help="auto, cuda, cuda:N, or cpu (with --smoke)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny model and inputs: the code paths in seconds"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="catalogue name or model file")
    parser.add_argument("--size", type=int, default=256, help="precision input side")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--halo", type=int, default=16)
    parser.add_argument("--tiled-size", type=int, default=1024, help="tiles/Dask input side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}"
    )
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace, device: torch.device) -> BenchConfig:
    skip = frozenset(s for s in args.skip.split(",") if s)
    unknown = skip - set(SECTIONS)
    if unknown:
        raise SystemExit(f"bench_gpu: unknown sections {sorted(unknown)}; expected {SECTIONS}")
    if args.smoke:
        return BenchConfig.smoke_config(str(device), skip)
    return BenchConfig(
        device=str(device),
        model=args.model,
        size=args.size,
        tile=args.tile,
        halo=args.halo,
        tiled_size=args.tiled_size,
        repeats=args.repeats,
        skip=skip,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        if not args.smoke:
            print(
                "bench_gpu: --device cpu runs only with --smoke (the CPU benchmark is make bench)"
            )
            return 2
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print(
            f"bench_gpu: no CUDA GPU available to PyTorch {torch.__version__} here; nothing measured"
        )
        return 0
    else:
        device = torch.device("cuda" if args.device == "auto" else args.device)
    config = config_from(args, device)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        model, ref, label = load_bench_model(config, Path(tmp))
        bench = Bench(config, device, model, ref, label, Path(tmp))
        print(f"## GPU check: {label}\n")
        print("\n".join(environment(device)) + "\n", flush=True)
        failed = []
        for name in SECTIONS:
            if name in config.skip:
                print(f"({name}: skipped)\n")
                continue
            started = time.perf_counter()
            try:
                table = RUNNERS[name](bench)
            except Exception as exc:  # one failing section must not hide the others' figures
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                print(f"({name}: FAILED: {type(exc).__name__}: {first})\n", flush=True)
                failed.append(name)
                continue
            table.notes.append(f"Section time {time.perf_counter() - started:.1f} s.")
            print(table.markdown() + "\n", flush=True)
    if failed:
        print(f"bench_gpu: sections failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
