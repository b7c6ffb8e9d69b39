"""Inference benchmark: our CPU engine (fp32, bf16, int8) beside spandrel and the ONNX peers.

Prints Markdown tables (the README quotes them). Every table names the CPU, its bf16/int8
flags, the thread count and the load. Runs are interleaved and repeated in one process;
figures are medians, and speed is given as a ratio to spandrel's fp32 run of the same weights
in the same rounds, so a busy shared machine slows every entry alike. The int8 peers
(onnxruntime, OpenVINO) run when the ``peers`` extra is installed and say so when not. On a
CPU without bf16 arithmetic (no AVX512-BF16, no AMX) the bf16 runs are left out, the tiled
table runs fp32, and each table says so (``bench/native_bf16.py``).

    python bench/bench_inference.py [--repeats 3] [--size 64] [--model realesrgan-x4plus] [--tables ...]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as the esrgan CLI does

import argparse
import copy
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig, receptive_radius
from esrgan_plugin.device import cpu_info
from esrgan_plugin.engines.calibration import calibration_for, default_images, to_tensor
from esrgan_plugin.engines.onednn.fused import BF16, FP32, FusedRRDBNet, PrecisionPolicy
from esrgan_plugin.engines.onednn.int8 import INT8_REST_BF16, Int8Options, quantize_rrdbnet
from esrgan_plugin.engines.openvino.engine import openvino_available
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.models.loading import LoadedModel, build_from_state_dict, load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from native_bf16 import BF16_LEFT_OUT, bf16_here  # noqa: E402

FLOP_PER_PIXEL_X4 = 35.8e6  # RRDBNet x4, nf 64, gc 32, nb 23 (DESIGN.md section 7)
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "images"


def machine_line() -> str:
    """CPU model, bf16/int8 flags, cores, torch threads, wait policy and the load right now."""
    info = cpu_info()
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info.relevant_flags.items())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    busy = " - shared machine, figures noisy" if load > info.cores else ""
    return (
        f"CPU {info.model} ({info.cores} cores; {flags}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}; "
        f"load {load:.1f} (1-min average){busy}"
    )


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


@dataclass
class Entry:
    """One benchmarked run: a name and a zero-argument call returning the NCHW output."""

    name: str
    run: Callable[[], torch.Tensor]


def interleaved(
    entries: list[Entry],
    repeats: int,
    before_each: Callable[[Entry], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Warm up, then ``repeats`` rounds of every entry in turn; medians per entry.

    ``ratio`` is the median over rounds of (first entry's seconds / this entry's seconds):
    a ratio within each round cancels the load drift between rounds. ``before_each(entry)``
    runs untimed just before each timed run (e.g. to sample the machine's matmul peak).
    """
    for entry in entries:
        entry.run()
    wall: dict[str, list[float]] = {e.name: [] for e in entries}
    cpu: dict[str, list[float]] = {e.name: [] for e in entries}
    for _ in range(repeats):
        for entry in entries:
            if before_each is not None:
                before_each(entry)
            c0, w0 = time.process_time(), time.perf_counter()
            entry.run()
            wall[entry.name].append(time.perf_counter() - w0)
            cpu[entry.name].append(time.process_time() - c0)
    ref = wall[entries[0].name]
    return {
        e.name: {
            "seconds": statistics.median(wall[e.name]),
            "cpu": statistics.median(cpu[e.name]),
            "ratio": statistics.median(r / t for r, t in zip(ref, wall[e.name], strict=True)),
            "cpu_ratio": statistics.median(
                r / t for r, t in zip(cpu[entries[0].name], cpu[e.name], strict=True)
            ),
        }
        for e in entries
    }


def peer_entries(model: LoadedModel, x: torch.Tensor) -> tuple[list[Entry], list[str]]:
    """onnxruntime / OpenVINO runs of the same weights (bench/peers.py), where installed;
    OpenVINO's bf16 only where the CPU has bf16 arithmetic (elsewhere it runs f32)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from peers import PEER_KINDS, prepare_peers
    except ImportError as exc:  # the onnx extra (exporter) is missing
        return [], [f"peers unavailable: {exc}"]
    crops = [to_tensor(image, 3).numpy() for image in default_images()]
    kinds: tuple[str, ...] = PEER_KINDS
    left_out: list[str] = []
    if not bf16_here():
        kinds, left_out = tuple(k for k in PEER_KINDS if k != "ov-bf16"), [BF16_LEFT_OUT]
    try:
        peers, skipped = prepare_peers(model, tuple(x.shape), torch.get_num_threads(), crops, kinds)
    except Exception as exc:  # a peer that fails to build is reported, not fatal
        return [], [f"peers failed to prepare: {exc}", *left_out]
    skipped += left_out
    array = x.numpy()
    entries = [
        Entry(
            f"{peer.name}{f' ({peer.note})' if peer.note else ''}",
            lambda peer=peer: torch.from_numpy(peer.run(array)),
        )
        for peer in peers
    ]
    return entries, skipped


def speed_table(model: LoadedModel, label: str, size: int, repeats: int) -> None:
    """The headline table: ours fp32/bf16/int8 beside spandrel and the ONNX peers (the bf16
    runs only where the CPU has bf16 arithmetic)."""
    import spandrel

    x = test_image(size)
    net = model.module
    reference = spandrel.ModelLoader().load_from_state_dict(net.state_dict()).model.eval()
    started = time.perf_counter()
    calibration_for(net)  # type: ignore[arg-type]  # int8 ranges: computed once, then cached
    calibration_seconds = time.perf_counter() - started

    def run_reference() -> torch.Tensor:
        with torch.no_grad():
            return reference(x)

    plain = copy.deepcopy(net).to(memory_format=torch.channels_last)

    def autocast_module() -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return plain(x.contiguous(memory_format=torch.channels_last)).float()

    native_bf16 = bf16_here()
    precisions = ("fp32", "bf16", "int8") if native_bf16 else ("fp32", "int8")
    up = {p: Upscaler(model, UpscaleOptions(tile=0, precision=p, device="cpu")) for p in precisions}
    entries = [
        Entry("spandrel ESRGAN fp32 (reference)", run_reference),
        Entry("ours fp32 (fused oneDNN engine)", lambda: up["fp32"].upscale_tensor(x)),
    ]
    if native_bf16:
        entries.append(
            Entry(
                "ours bf16 (bf16 dense blocks; residual, head, tail fp32)",
                lambda: up["bf16"].upscale_tensor(x),
            )
        )
    tail = "bf16" if native_bf16 else "fp32"  # default_int8_options: bf16 only where native
    entries.append(
        Entry(
            f"ours int8 (int8 dense blocks but the last RRDB, {tail} tail)",
            lambda: up["int8"].upscale_tensor(x),
        )
    )
    if native_bf16:
        entries.append(Entry("plain module, bf16 autocast (the old path)", autocast_module))
    if openvino_available():
        started = time.perf_counter()
        ov = {
            p: Upscaler(model, UpscaleOptions(tile=0, precision=p, device="cpu", engine="openvino"))
            for p in precisions
        }
        ov_setup = time.perf_counter() - started
        entries.append(Entry("ours fp32, engine openvino", lambda: ov["fp32"].upscale_tensor(x)))
        if native_bf16:
            entries.append(
                Entry("ours bf16, engine openvino", lambda: ov["bf16"].upscale_tensor(x))
            )
        entries.append(
            Entry(
                "ours int8, engine openvino (our quantisation points and calibration)",
                lambda: ov["int8"].upscale_tensor(x),
            )
        )
    peers, skipped = peer_entries(model, x)
    entries += peers
    outputs = {e.name: e.run().clamp(0, 1) for e in entries}
    results = interleaved(entries, repeats)
    ref_out = outputs[entries[0].name]
    pixels = size * size
    print(f"\n### {label}: {size}x{size} input, x4, interleaved rounds, median of {repeats}\n")
    print(machine_line() + "\n")
    print(
        "| run | seconds | CPU-seconds | output MPix/s | vs spandrel fp32 (wall) | vs spandrel fp32 (CPU time) | PSNR vs spandrel fp32 | max error |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for entry in entries:
        r = results[entry.name]
        out = outputs[entry.name]
        err = (out - ref_out).abs().max().item() * 255
        print(
            f"| {entry.name} | {r['seconds']:.2f} | {r['cpu']:.2f} | {pixels * 16 / r['seconds'] / 1e6:.3f} | "
            f"{r['ratio']:.2f}x | {r['cpu_ratio']:.2f}x | {psnr(out, ref_out):.1f} dB | {err:.2f}/255 |"
        )
    print(
        f"\nint8 calibration (default set, once per model, then cached): {calibration_seconds:.1f} s."
    )
    if openvino_available():
        print(
            f"engine openvino setup (ONNX export of three graphs, or read from the cache): "
            f"{ov_setup:.1f} s; compiling for a new input shape is part of the first, untimed call."
        )
    else:
        skipped.append(
            "ours, engine openvino: openvino is not installed (pip install -e '.[openvino]')"
        )
    if not native_bf16:
        skipped.append(BF16_LEFT_OUT)
    for reason in dict.fromkeys(skipped):  # once each (the peers' list may say it too)
        print(f"Not run: {reason}.")


def eval_crops(size: int) -> dict[str, torch.Tensor]:
    """Real image crops for the precision study: a photo, a comic, a JPEG (where available)."""
    crops = {"astronaut (photo)": test_image(size)}
    for name, file in (
        ("comic (Set14 LR)", "set14_comic_lr_x4.png"),
        ("jpeg_0014", "jpeg_0014.jpg"),
    ):
        path = SHARED / file
        if path.exists():
            from pipelines.io.images import read_image

            image = read_image(path)[:size, :size]
            crops[name] = to_tensor(image, 3)
    return crops


def precision_choices_table(model: LoadedModel, label: str, size: int) -> None:
    """Which parts need fp32 (bf16) and what int8 keeps in higher precision, measured. Where the
    CPU has no bf16 arithmetic the bf16 variants and the int8 ones with a bf16 tail are left out
    (oneDNN has no bf16 convolutions there); the int8 default's fp32 tail is measured instead."""
    net: RRDBNet = model.module  # type: ignore[assignment]  # main() checks it is one
    crops = eval_crops(size)
    fp32 = FusedRRDBNet(net, FP32)
    references = {name: fp32(x).clamp(0, 1) for name, x in crops.items()}
    bf = torch.bfloat16
    calibration = calibration_for(net)
    native_bf16 = bf16_here()
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "ours fp32 (reference for this table)": fp32,
    }
    if native_bf16:
        variants |= {
            "bf16 everywhere": FusedRRDBNet(net, PrecisionPolicy(bf, False, False, False)),
            "bf16, residual stream fp32": FusedRRDBNet(
                net, PrecisionPolicy(bf, True, False, False)
            ),
            "bf16, residual + head fp32": FusedRRDBNet(net, PrecisionPolicy(bf, True, True, False)),
            "bf16, residual + head + tail fp32 (default)": FusedRRDBNet(net, BF16),
        }
    variants["int8 every dense block, rest fp32"] = quantize_rrdbnet(
        net, calibration, Int8Options()
    )
    if native_bf16:
        variants |= {
            "int8 every dense block, bf16 tail": quantize_rrdbnet(
                net, calibration, Int8Options(rest=INT8_REST_BF16)
            ),
            "int8 but the last RRDB, bf16 tail (default)": quantize_rrdbnet(
                net, calibration, Int8Options(rest=INT8_REST_BF16, keep_last=3)
            ),
            "int8 but the last two RRDBs, bf16 tail": quantize_rrdbnet(
                net, calibration, Int8Options(rest=INT8_REST_BF16, keep_last=6)
            ),
        }
    else:  # default_int8_options() here: the last RRDB and the tail in fp32
        variants["int8 but the last RRDB, fp32 tail (default here)"] = quantize_rrdbnet(
            net, calibration, Int8Options(keep_last=3)
        )
    if openvino_available():
        from esrgan_plugin.engines.openvino.engine import OpenVinoEngine

        threads = torch.get_num_threads()
        if native_bf16:
            variants["engine openvino bf16"] = OpenVinoEngine(net, "bf16", threads)
        tail = "bf16" if native_bf16 else "f32"  # OpenVINO's int8 runs its float parts in f32 here
        variants[f"engine openvino int8, {tail} tail"] = OpenVinoEngine(
            net, "int8", threads, quantize_tail=False
        )
        variants["engine openvino int8, int8 tail (default)"] = OpenVinoEngine(net, "int8", threads)
    x = next(iter(crops.values()))
    entries = [Entry(name, lambda fn=fn: fn(x)) for name, fn in variants.items()]
    speed = interleaved(entries, 2)
    print(f"\n### Precision choices, {label}: {size}x{size} crops, PSNR against our fp32 output\n")
    print(machine_line() + "\n")
    if not native_bf16:
        print(f"{BF16_LEFT_OUT}.\n")
    print(
        "| variant | " + " | ".join(crops) + " | worst max error | speed vs ours fp32 (CPU time) |"
    )
    print("| --- | " + " | ".join("---:" for _ in crops) + " | ---: | ---: |")
    for name, fn in variants.items():
        cells, worst = [], 0.0
        for crop, x_crop in crops.items():
            out = fn(x_crop).clamp(0, 1)
            cells.append(f"{psnr(out, references[crop]):.1f} dB")
            worst = max(worst, (out - references[crop]).abs().max().item() * 255)
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {worst:.2f}/255 | {speed[name]['cpu_ratio']:.2f}x |"
        )


_PROBE = """
import json, resource, sys, time, torch
from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
from esrgan_plugin.inference import UpscaleOptions, Upscaler
torch.manual_seed(0)
nb, size, precision = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
up = Upscaler(RRDBNet(RRDBNetConfig(num_blocks=nb)), UpscaleOptions(tile=0, precision=precision, device="cpu"))
x = torch.rand(1, 3, size, size)
up.upscale_tensor(x)
before = resource.getrusage(resource.RUSAGE_SELF)
w0 = time.perf_counter()
for _ in range(3):
    up.upscale_tensor(x)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": (time.perf_counter() - w0) / 3,
                  "cpu": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / 3,
                  "sys": (after.ru_stime - before.ru_stime) / 3,
                  "faults": (after.ru_minflt - before.ru_minflt) / 3}))
"""


def probe(env: dict[str, str], nb: int, size: int, precision: str) -> dict[str, float]:
    """Run the probe in a fresh process (wait policy and allocator are per process)."""
    import json

    full_env = {**os.environ, **env}
    for key, value in env.items():
        if value == "":
            full_env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(nb), str(size), precision],
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def spinners(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` busy-looping processes of our own: a reproducible 'loaded machine'."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def runtime_table() -> None:
    """OpenMP wait policy (idle / loaded) and the allocator setting, each in a fresh process."""
    cores = cpu_info().cores
    precision = "bf16" if bf16_here() else "fp32"
    print(
        f"\n### CPU runtime settings: RRDBNet nb 3, 64x64, {precision}, seconds per forward (median of 3)\n"
    )
    print(machine_line() + "\n")
    print("| extra load | threads | OMP_WAIT_POLICY | seconds | CPU-seconds |")
    print("| --- | ---: | --- | ---: | ---: |")
    for extra in (0, cores):
        procs = spinners(extra)
        try:
            for threads in sorted({1, cores}):
                for policy in ("", "PASSIVE"):
                    env = {"OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": policy}
                    r = probe(env, 3, 64, precision)
                    load = f"+{extra} busy processes" if extra else "none added"
                    print(
                        f"| {load} | {threads} | {policy or 'default (spins)'} | {r['wall']:.3f} | {r['cpu']:.3f} |"
                    )
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    print(
        "\n| allocator (RRDBNet nb 1, 256x256 whole image, fp32) | seconds | system seconds | page faults per call |"
    )
    print("| --- | ---: | ---: | ---: |")
    for label, value in (
        ("glibc default (mmap per large block)", "0"),
        ("freed blocks kept (ours)", "1"),
    ):
        r = probe({"ESRGAN_REUSE_MEMORY": value}, 1, 256, "fp32")
        print(f"| {label} | {r['wall']:.3f} | {r['sys']:.3f} | {r['faults']:,.0f} |")


def tiling_table(model: LoadedModel, size: int, repeats: int) -> None:
    """Whole image against tiles, in bf16 where the CPU has bf16 arithmetic, else fp32."""
    x = test_image(size)
    precision = "bf16" if bf16_here() else "fp32"
    configs = {
        "whole image": UpscaleOptions(tile=0, precision=precision, device="cpu"),
        f"tile {size // 2}, halo 24, batch 4": UpscaleOptions(
            tile=size // 2, halo=24, batch_size=4, precision=precision, device="cpu"
        ),
        f"tile {size // 2}, halo 8, batch 4": UpscaleOptions(
            tile=size // 2, halo=8, batch_size=4, precision=precision, device="cpu"
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
        f"\n### Tiled vs whole image, full x4 model, {precision}, {size}x{size} input, "
        f"median of {repeats}\n"
    )
    print(machine_line() + "\n")
    if precision != "bf16":
        print(f"{BF16_LEFT_OUT}.\n")
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
    print(machine_line() + "\n")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="input side for the speed table")
    parser.add_argument(
        "--model",
        default="realesrgan-x4plus",
        help="trained x4 RRDBNet for the speed and precision tables (name or file)",
    )
    parser.add_argument(
        "--tables",
        default="speed,precision,runtime,tiling,halo",
        help="comma-separated subset of: speed, precision, runtime, tiling, halo",
    )
    args = parser.parse_args()
    tables = set(args.tables.split(","))
    print(machine_line())
    torch.manual_seed(0)
    full = build_from_state_dict(
        RRDBNet(RRDBNetConfig()).state_dict(), source="random-init full x4"
    )
    try:
        trained: LoadedModel | None = load_model(args.model)
        label = f"{args.model} (real weights)"
    except Exception as exc:  # no weights package: say so, and measure random weights
        print(f"\n(model {args.model!r} unavailable: {exc}; using random full-size weights)")
        trained, label = None, "random-init full x4"
    model = trained or full
    if "speed" in tables:
        speed_table(model, label, args.size, args.repeats)
    if "precision" in tables and isinstance(model.module, RRDBNet):
        precision_choices_table(model, label, 48)
    if "runtime" in tables:
        runtime_table()
    if "tiling" in tables:
        tiling_table(full, 2 * args.size, args.repeats)
    if "halo" in tables:
        halo_table(full, "full x4 model, random initialisation", 96, 32)
        if trained is not None:
            halo_table(trained, label, 96, 32)


if __name__ == "__main__":
    main()
