"""The headline speed table: real sizes, every engine and precision, against the CPU's peak.

For RealESRGAN_x4plus (real weights) at 192x192 and 512x512 (whole, and with the default
tiles), each engine and precision is timed beside spandrel's ESRGAN fp32 and the ONNX peers
(onnxruntime, OpenVINO's own graphs) in interleaved rounds in one process. Every run is given
as seconds, the ratio to spandrel fp32 in the same rounds, the fraction of this machine's
matmul peak (measured here, fp32 and bf16, by large matmuls, PyTorch's and OpenVINO's, before
and after the rounds and just before each timed run: the highest of them all, since a shared machine's speed
drifts within minutes and a peak is a maximum; the network's FLOPs counted by
``torch.utils.flop_counter``), and PSNR against our fp32 output. A last table times
``esrgan upscale`` on a whole photo against the network's own compute time on it. On a CPU
without bf16 arithmetic (no AVX512-BF16, no AMX) the bf16 runs, the bf16 peak and OpenVINO's
own bf16 peer are left out and the output says so (``bench/native_bf16.py``); the command's
table then defaults to fp32 alone.

    python bench/bench_speed.py [--sizes 192 512] [--repeats 3] [--model realesrgan-x4plus]
        [--cli-precisions fp32 bf16] [--runs ENGINE:PRECISION ...] [--no-cli]

``--sizes`` with no sizes gives the command's table alone.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as the esrgan CLI does

import argparse
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import Entry, interleaved, machine_line, peer_entries, psnr  # noqa: E402
from native_bf16 import BF16_LEFT_OUT, NO_BF16_ARITHMETIC, bf16_here  # noqa: E402

from esrgan_plugin.engines.registry import ENGINES, choose_engine  # noqa: E402
from esrgan_plugin.inference import UpscaleOptions, Upscaler  # noqa: E402
from esrgan_plugin.models.loading import LoadedModel, load_model  # noqa: E402

RUNS = [  # (engine, precision) in table order; those the table refuses here are left out,
    # and the bf16 ones where the CPU has no bf16 arithmetic
    ("pytorch", "fp32"),
    ("pytorch", "bf16"),
    ("onednn", "fp32"),
    ("onednn", "bf16"),
    ("onednn", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
]


LARGE_SIZE = 256
"""Above this side only :data:`LARGE_RUNS` and the peers' fp32/bf16 run (each run of x4plus at
512x512 takes a minute or more on 2 cores), unless ``--all``."""
LARGE_RUNS = {("onednn", "bf16"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8")}


def matmul_peak(dtype: torch.dtype, side: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of ``repeats`` square matmuls, PyTorch's or OpenVINO's, whichever is
    faster: the machine's practical peak (on an AVX2 AMD EPYC PyTorch's fp32 matmul measured
    119-167 GFLOP/s, once below what OpenVINO's convolutions ran at)."""
    a = torch.rand(side, side, dtype=dtype)
    b = torch.rand(side, side, dtype=dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    run = openvino_matmul(dtype, side, torch.get_num_threads())
    if run is not None:
        best = min(best, *(_timed(run) for _ in range(repeats)))
    return 2 * side**3 / best


@functools.cache
def openvino_matmul(dtype: torch.dtype, side: int, threads: int) -> Callable[[], object] | None:
    """A warm OpenVINO square matmul (its inference precision ``dtype``) as a call, compiled
    once; None without OpenVINO."""
    try:
        import openvino as ov
        import openvino.opset13 as ops
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    a = ops.parameter([side, side], np.float32)
    b = ops.constant(rng.random((side, side), dtype=np.float32))
    precision = "bf16" if dtype == torch.bfloat16 else "f32"
    compiled = ov.Core().compile_model(
        ov.Model([ops.matmul(a, b, False, False)], [a]),
        "CPU",
        {
            "INFERENCE_NUM_THREADS": str(threads),
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
        },
    )
    request = compiled.create_infer_request()
    x = rng.random((side, side), dtype=np.float32)

    def run() -> object:
        return request.infer([x], share_inputs=True, share_outputs=True)

    run()
    return run


def run_spec(text: str) -> tuple[str, str]:
    """``ENGINE:PRECISION`` (``--runs``) as a pair."""
    engine, sep, precision = text.partition(":")
    if not (sep and engine and precision):
        raise argparse.ArgumentTypeError(f"{text!r}: expected ENGINE:PRECISION, e.g. onednn:fp32")
    return engine, precision


def measure_peaks() -> dict[str, float]:
    """This machine's matmul peak now, fp32 and bf16 (FLOP/s); no bf16 entry where the CPU has
    no bf16 arithmetic (emulated bf16 matmuls take minutes and measure nothing)."""
    peaks = {kind: peak_probe(kind) for kind in ("fp32", "bf16")}
    return {kind: value for kind, value in peaks.items() if value is not None}


def peak_kind(name: str) -> str:
    """The matmul peak a run's fraction is taken against: bf16, fp32, or none (int8)."""
    return "bf16" if "bf16" in name else "fp32" if "int8" not in name else ""


def peak_probe(kind: str) -> float | None:
    """The matmul peak of ``kind`` right now (FLOP/s), sampled before each timed run and by
    :func:`measure_peaks`; None for int8 runs and for bf16 where the CPU has no bf16
    arithmetic."""
    if kind == "fp32":
        return matmul_peak(torch.float32)
    if kind == "bf16" and bf16_here():
        return matmul_peak(torch.bfloat16)
    return None


def peak_line(samples: dict[str, list[float]]) -> str:
    """The start of the "Matmul peak here" line: each kind's peak (the highest sample) and the
    range of its samples; bf16 none where it was not measured."""
    parts = []
    for kind in ("fp32", "bf16"):
        values = samples.get(kind)
        if values:
            parts.append(
                f"{kind} {max(values) / 1e9:.0f} GFLOP/s (the highest of {len(values)} samples, "
                f"{min(values) / 1e9:.0f}-{max(values) / 1e9:.0f})"
            )
        else:
            parts.append(f"{kind}: none (no bf16 arithmetic)")
    return "Matmul peak here: " + ", ".join(parts) + "; "


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def flops_per_pixel(model: LoadedModel) -> float:
    """FLOPs of one forward pass per input pixel (multiply-adds counted twice)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, model.in_channels, 32, 32)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.module(x)
    return counter.get_total_flops() / (32 * 32)


def photo(size: int) -> torch.Tensor:
    """A natural photo crop (scikit-image's astronaut, mirrored when larger), NCHW in [0, 1]."""
    from skimage import data

    image = data.astronaut()
    if size > 512:
        image = np.pad(image, ((0, size - 512), (0, size - 512), (0, 0)), mode="symmetric")
    crop = image[:size, :size].astype(np.float32) / 255
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]


def size_table(
    model: LoadedModel,
    size: int,
    repeats: int,
    peaks: Callable[[], dict[str, float]],
    every: bool = False,
    only: list[tuple[str, str]] | None = None,
    probe: Callable[[str], float | None] = peak_probe,
) -> None:
    """Every engine and precision at ``size`` x ``size``, whole image; default tiles at 512+.
    ``only``: just these (engine, precision) runs beside spandrel (no tiles, no peers).
    ``peaks`` measures the matmul peaks before and after the rounds and ``probe(kind)`` just
    before each timed run; the peak is the highest of them (on a shared AMD EPYC the fp32
    matmul measured 167 GFLOP/s before one table's rounds and 126 after, and once below what
    OpenVINO's convolutions ran at, so a sample next to a run is no peak)."""
    import spandrel

    x = photo(size)
    notes = []
    entries = []
    try:
        loaded = spandrel.ModelLoader().load_from_state_dict(model.module.state_dict())
        reference = loaded.model.eval()

        def run_reference() -> torch.Tensor:
            with torch.no_grad():
                return reference(x)

        entries.append(Entry("spandrel ESRGAN fp32 (reference)", run_reference))
    except Exception as exc:  # spandrel guesses some hyperparameters (e.g. gc 32)
        notes.append(
            f"spandrel cannot load this model ({str(exc).splitlines()[0][:80]}); "
            "ratios are to the first run instead"
        )
    parameters = sum(p.numel() for p in model.module.parameters())
    native_bf16 = bf16_here()
    for engine, precision in only or RUNS:
        large = size > LARGE_SIZE and not every and only is None
        if large and (engine, precision) not in LARGE_RUNS:
            continue
        if precision == "bf16" and not native_bf16:
            if only is None:  # asked for by name (--runs), it runs: emulated, or OpenVINO's f32
                notes.append(BF16_LEFT_OUT)
                continue
            notes.append(f"{engine} bf16 asked for, but {NO_BF16_ARITHMETIC}")
        try:
            choose_engine(engine, model.descriptor, torch.device("cpu"), precision)
        except Exception as exc:
            notes.append(f"{engine} {precision}: {exc}")
            continue
        up = Upscaler(model, UpscaleOptions(tile=0, precision=precision, engine=engine))
        entries.append(Entry(f"{engine} {precision}", lambda up=up: up.upscale_tensor(x)))
    auto = choose_engine("auto", model.descriptor, torch.device("cpu"), "fp32", parameters)
    tile = 0
    if only is None:  # tiles in the fastest float precision here: bf16 where the CPU has it
        fastest = "bf16" if native_bf16 else "fp32"
        tiling = choose_engine("auto", model.descriptor, torch.device("cpu"), fastest, parameters)
        tiled = Upscaler(model, UpscaleOptions(precision=fastest, engine=tiling.name))
        tile = tiled._initial_tile(size, size)
    if tile:
        entries.append(
            Entry(
                f"{tiling.name} {fastest}, default tiles ({tile} + halo {tiled.halo})",
                lambda: tiled.upscale_tensor(x),
            )
        )
    elif only is None:
        notes.append(f"default tiles at {size}x{size}: the whole image (it fits the budget)")
    peers, skipped = peer_entries(model, x) if only is None else ([], [])
    if size > LARGE_SIZE and not every:
        peers = [p for p in peers if "int8" not in p.name and "onnxruntime" not in p.name]
    entries += peers
    notes += skipped
    samples: dict[str, list[float]] = {kind: [value] for kind, value in peaks().items()}

    def sample(entry: Entry) -> None:
        kind = peak_kind(entry.name)
        value = probe(kind) if kind else None
        if value:
            samples.setdefault(kind, []).append(value)

    outputs = {e.name: e.run().clamp(0, 1) for e in entries}
    results = interleaved(entries, repeats, sample)
    for kind, value in peaks().items():
        samples[kind].append(value)
    peak = {kind: max(values) for kind, values in samples.items()}
    ours = outputs.get(f"{auto.name} fp32", outputs[entries[0].name])
    flop = flops_per_pixel(model) * size * size
    print(f"\n### {size}x{size}, whole image, interleaved rounds, median of {repeats}\n")
    print(machine_line() + "\n")
    print(
        peak_line(samples) + f"the network: {flop / size / size / 1e6:.1f} MFLOP per input pixel; "
        f"`auto` runs {auto.name}.\n"
    )
    print(
        f"| run | seconds | vs {entries[0].name.split(' (')[0]} | of matmul peak | PSNR vs our fp32 |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for entry in entries:
        r = results[entry.name]
        kind = peak_kind(entry.name)
        if not kind:
            share = "(int8)"
        elif kind in peak:
            share = f"{flop / r['seconds'] / peak[kind]:.0%}"
        else:  # bf16 asked for by name where the CPU has no bf16 peak
            share = "-"
        print(
            f"| {entry.name} | {r['seconds']:.2f} | {r['ratio']:.2f}x | {share} | "
            f"{psnr(outputs[entry.name], ours):.1f} dB |"
        )
    for note in dict.fromkeys(notes):  # once each (several runs leave bf16 out)
        print(f"\nNot run / note: {note}.")


def cli_table(model_name: str, model: LoadedModel, precision: str, repeats: int) -> None:
    """``esrgan upscale`` on a whole photo (start-up, I/O, tiles included) against the network's
    own compute time on the same pixels in this process: the fast start (cached OpenVINO graphs,
    no torch import; an untimed first run records them) and the usual path
    (``ESRGAN_FAST_START=0``), interleaved with the network alone."""
    from skimage import data

    from esrgan_plugin.cli.fast_start import FAST_START_ENV
    from pipelines.api import write_image

    image = data.chelsea()  # 451 x 300 photo
    byte_compile_project()
    with tempfile.TemporaryDirectory() as scratch:
        source = write_image(Path(scratch) / "chelsea.png", image)
        command = [
            sys.executable,
            "-m",
            "esrgan_plugin",
            "upscale",
            str(source),
            "-o",
            str(Path(scratch) / "out.png"),
            "--model",
            model_name,
            "--precision",
            precision,
            "--overwrite",
        ]
        usual_env = {**os.environ, FAST_START_ENV: "0"}
        subprocess.run(command, check=True, capture_output=True)  # records the fast start
        up = Upscaler(model, UpscaleOptions(tile=0, precision=precision))
        x = torch.from_numpy(image.astype(np.float32).transpose(2, 0, 1) / 255)[None].contiguous()
        up.upscale_tensor(x)
        fast, usual, networks = [], [], []
        for _ in range(repeats):  # interleaved: the machine's load moves all three alike
            fast.append(_timed(lambda: subprocess.run(command, check=True, capture_output=True)))
            usual.append(
                _timed(
                    lambda: subprocess.run(command, check=True, capture_output=True, env=usual_env)
                )
            )
            networks.append(_timed(lambda: up.upscale_tensor(x)))
    network = statistics.median(networks)
    print(f"\n### esrgan upscale on a whole photo (451x300), {precision}, median of {repeats}\n")
    print("| run | seconds | vs the network alone | each round (s) |")
    print("| --- | ---: | ---: | --- |")
    print(
        f"| network only (engine {up.engine.name}, in process, warm) | {network:.1f} | 1.00x "
        f"| {_rounds(networks)} |"
    )
    for name, walls in (
        ("`esrgan upscale`, fast start (cached graphs, no torch import)", fast),
        (f"`esrgan upscale`, usual path ({FAST_START_ENV}=0)", usual),
    ):
        wall = statistics.median(walls)
        print(f"| {name} | {wall:.1f} | {wall / network:.2f}x | {_rounds(walls)} |")


def byte_compile_project() -> None:
    """Write the project's bytecode, as pip does when it installs a wheel: where
    ``PYTHONDONTWRITEBYTECODE`` is set (as on the project's machines) every command would
    otherwise compile its 100-odd modules from source, 0.5 s of each start (2026-12-03)."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("esrgan_plugin", "pipelines", "training"):
        compileall.compile_dir(root / package, quiet=1)


def _rounds(walls: list[float]) -> str:
    """Each round's wall time, in order (the machine's speed moves between rounds)."""
    return " / ".join(f"{w:.1f}" for w in walls)


def cli_precisions(asked: list[str] | None) -> list[str]:
    """The command table's precisions: those asked for (with a warning for bf16 where the CPU
    has no bf16 arithmetic), else fp32 and bf16, or fp32 alone where there is none."""
    native_bf16 = bf16_here()
    if asked is None:
        return ["fp32", "bf16"] if native_bf16 else ["fp32"]
    if "bf16" in asked and not native_bf16:
        print(f"\nWarning: --cli-precisions bf16 asked for, but {NO_BF16_ARITHMETIC}.")
    return asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesrgan-x4plus")
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[192, 512], help="none: the CLI table only"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-photo CLI table")
    parser.add_argument(
        "--cli-precisions",
        nargs="+",
        choices=["fp32", "bf16", "int8"],
        help="precisions of the whole-photo command table (default fp32 bf16; fp32 alone where "
        "the CPU has no bf16 arithmetic)",
    )
    parser.add_argument("--all", action="store_true", help="every run at every size")
    parser.add_argument(
        "--runs",
        nargs="+",
        type=run_spec,
        metavar="ENGINE:PRECISION",
        help="only these runs beside spandrel (e.g. pytorch:fp32 onednn:fp32); implies --no-cli",
    )
    args = parser.parse_args()
    only: list[tuple[str, str]] | None = args.runs
    model = load_model(args.model)
    print(f"## Speed at real sizes: {args.model}")
    print("\nEngines: " + ", ".join(e.name for e in ENGINES))
    if not bf16_here() and only is None:
        print(f"\n{BF16_LEFT_OUT}.")
    for size in args.sizes:
        size_table(model, size, args.repeats, measure_peaks, args.all, only)
    if not args.no_cli and only is None:
        for precision in cli_precisions(args.cli_precisions):
            cli_table(args.model, model, precision, args.repeats)


if __name__ == "__main__":
    main()
