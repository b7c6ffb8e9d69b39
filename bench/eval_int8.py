"""int8 quality on the openvino engine: dB against fp32, Set14 metrics, NIQE's noise, per-block
sensitivity (``make eval-int8``).

Three tables, each deterministic (no timing), for RealESRGAN_x4plus by default:

1. ``quality``: the openvino engine's bf16 and int8 outputs against the fp32 module's (8-bit
   outputs, PSNR over RGB) on photos (the whole 451x300 cat, 192x192 crops of coffee, the
   astronaut, immunohistochemistry and the motorcycle: the last three held out of the default
   calibration set, which has crops of the cat and coffee) and on Set14's bicubic LR images in
   ``../shared/data/images``; and each precision against Set14's HR images (PSNR-Y and NIQE with a 4-pixel border removed, as
   ``esrgan eval --crop-border 4`` measures).
2. ``niqe-noise``: how far NIQE moves when the fp32 output gets Gaussian noise of a fraction
   of one 8-bit level (rounded back to 8 bits): the resolution at which two outputs' NIQE can
   be told apart on these images.
3. ``sensitivity``: for each dense block, the dB against fp32 when only that block is
   quantised (PyTorch fake quantisation on the engine's calibration, tail in float), on 64x64
   crops of Set14's baboon LR and of the cat; and what keeping the last N or the N most
   sensitive blocks in float would give, predicted by adding the blocks' error powers.

Usage::

    python bench/eval_int8.py [--tables quality niqe-noise sensitivity] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import machine_line  # noqa: E402

from esrgan_plugin.arch.rrdbnet import RRDBNet  # noqa: E402
from esrgan_plugin.engines.calibration import calibration_for  # noqa: E402
from esrgan_plugin.engines.openvino.engine import INT8_KEEP_LAST, OpenVinoEngine  # noqa: E402
from esrgan_plugin.engines.openvino.graphs import FakeQuantRRDBNet  # noqa: E402
from esrgan_plugin.models.loading import load_model  # noqa: E402
from esrgan_plugin.pixels import from_float, to_tensor  # noqa: E402
from pipelines.api import read_image  # noqa: E402
from training.evaluation.niqe import niqe  # noqa: E402
from training.metrics import psnr  # noqa: E402

SET14 = ("baboon", "comic")
CROP_BORDER = 4


def to_uint8(out: torch.Tensor) -> np.ndarray:
    """NCHW float output -> (H, W, C) uint8, as the command writes it."""
    pixels = np.ascontiguousarray(out[0].clamp(0, 1).permute(1, 2, 0).numpy())
    return from_float(pixels, np.dtype(np.uint8))


def test_images(images: Path) -> dict[str, np.ndarray]:
    """The cat and coffee photos lend crops to the default calibration set; the astronaut,
    immunohistochemistry and motorcycle crops and Set14's images are held out."""
    from skimage import data

    found = {
        "cat (whole)": data.chelsea(),
        "coffee 192": data.coffee()[100:292, 200:392],
        "astronaut 192": data.astronaut()[:192, :192],
        "ihc 192": data.immunohistochemistry()[200:392, 200:392],
        "motorcycle 192": data.stereo_motorcycle()[0][200:392, 300:492],
    }
    for name in SET14:
        path = images / f"set14_{name}_lr_x4.png"
        if path.is_file():
            found[f"{name} (Set14 LR)"] = read_image(path)
    return found


def hr_images(images: Path) -> dict[str, np.ndarray]:
    paths = {name: images / f"set14_{name}_hr.png" for name in SET14}
    return {name: read_image(path) for name, path in paths.items() if path.is_file()}


def against_hr(out: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    """PSNR-Y and NIQE of ``out`` against ``hr`` (cropped to ``out``), border removed."""
    hr = hr[: out.shape[0], : out.shape[1]]
    return (
        psnr(out, hr, crop_border=CROP_BORDER, test_y_channel=True),
        niqe(out, crop_border=CROP_BORDER),
    )


def quality_table(net: RRDBNet, images: Path) -> dict[str, np.ndarray]:
    """Print table 1; return the fp32 outputs by image name."""
    tests = test_images(images)
    hrs = hr_images(images)
    runs: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"fp32 (module)": net}
    for precision in ("bf16", "int8"):
        runs[f"openvino {precision}"] = OpenVinoEngine(net, precision, torch.get_num_threads())
    outputs: dict[str, dict[str, np.ndarray]] = {name: {} for name in runs}
    with torch.inference_mode():
        for run, forward in runs.items():
            for image, pixels in tests.items():
                outputs[run][image] = to_uint8(forward(to_tensor(pixels, 3)))
    reference = outputs["fp32 (module)"]
    print("\n### dB against the fp32 module (8-bit outputs, RGB)\n")
    print("| run | " + " | ".join(tests) + " |")
    print("| --- |" + " ---: |" * len(tests))
    for run in list(runs)[1:]:
        cells = [f"{psnr(outputs[run][i], reference[i]):.2f}" for i in tests]
        print(f"| {run} | " + " | ".join(cells) + " |")
    if hrs:
        print(f"\n### Set14 against the HR (PSNR-Y dB / NIQE, border {CROP_BORDER})\n")
        print("| run | " + " | ".join(hrs) + " |")
        print("| --- |" + " ---: |" * len(hrs))
        for run in runs:
            cells = []
            for name, hr in hrs.items():
                y, score = against_hr(outputs[run][f"{name} (Set14 LR)"], hr)
                cells.append(f"{y:.3f} / {score:.3f}")
            print(f"| {run} | " + " | ".join(cells) + " |")
    return reference


def niqe_noise_table(reference: dict[str, np.ndarray], draws: int = 3) -> None:
    """Print table 2: NIQE's change under sub-level noise on the fp32 Set14 outputs."""
    rng = np.random.default_rng(0)
    print("\n### NIQE's noise: the fp32 output plus Gaussian noise, rounded to 8 bits\n")
    print("| image | noise (8-bit levels) | dB against fp32 | NIQE change (each draw) |")
    print("| --- | ---: | ---: | --- |")
    for name in SET14:
        base = reference.get(f"{name} (Set14 LR)")
        if base is None:
            continue
        base_score = niqe(base, crop_border=CROP_BORDER)
        for sigma in (0.5, 1.0, 2.0):
            changes, db = [], 0.0
            for _ in range(draws):
                noisy = np.clip(base + rng.normal(0, sigma, base.shape), 0, 255)
                noisy = np.round(noisy).astype(np.uint8)
                db = psnr(noisy, base)
                changes.append(niqe(noisy, crop_border=CROP_BORDER) - base_score)
            drawn = ", ".join(f"{c:+.3f}" for c in changes)
            print(f"| {name} | {sigma} | {db:.1f} | {drawn} |")


def sensitivity_table(net: RRDBNet, images: Path) -> None:
    """Print table 3: each dense block quantised alone, and the predicted keep sets."""
    from skimage import data

    crops = {"cat": data.chelsea()[100:164, 150:214]}
    baboon = images / "set14_baboon_lr_x4.png"
    if baboon.is_file():
        crops = {"baboon": read_image(baboon)[32:96, 32:96], **crops}
    inputs = {name: to_tensor(crop, 3) for name, crop in crops.items()}
    calibration = calibration_for(net, None, with_lr_crops=True)  # as the openvino engine
    quantised = FakeQuantRRDBNet(net, calibration, keep_last=0, quantize_tail=False)
    body, original = quantised.net.body, net.body
    names = ("rdb1", "rdb2", "rdb3")
    fake = {(i, n): getattr(body[i], n) for i in range(len(body)) for n in names}
    blocks = 3 * len(body)
    with torch.inference_mode():
        references = {name: net(x).clamp(0, 1) for name, x in inputs.items()}
        scores: dict[str, list[float]] = {name: [] for name in inputs}
        for block in range(blocks):
            for i in range(len(body)):
                for j, n in enumerate(names):
                    setattr(
                        body[i], n, fake[(i, n)] if 3 * i + j == block else getattr(original[i], n)
                    )
            for name, x in inputs.items():
                error = torch.mean((quantised(x).clamp(0, 1) - references[name]) ** 2)
                scores[name].append(float(-10 * torch.log10(error)))
    print("\n### Each dense block quantised alone: dB against fp32 on 64x64 crops\n")
    for name, dbs in scores.items():
        order = sorted(range(blocks), key=lambda b: dbs[b])
        worst = ", ".join(f"{b}: {dbs[b]:.1f}" for b in order[:10])
        print(f"- {name}: the ten most sensitive blocks (block: dB) {worst}")
        last = set(range(blocks - INT8_KEEP_LAST, blocks))
        chosen = set(order[:INT8_KEEP_LAST])
        print(
            f"  - predicted (error powers added): all quantised {_added(dbs, set()):.2f} dB; "
            f"the last {INT8_KEEP_LAST} in float {_added(dbs, last):.2f} dB; "
            f"its {INT8_KEEP_LAST} most sensitive in float {_added(dbs, chosen):.2f} dB "
            f"(blocks {sorted(chosen)})"
        )
    print("\n" + json.dumps({"per_block_db": scores}))


def _added(dbs: list[float], kept: set[int]) -> float:
    power = sum(10 ** (-db / 10) for b, db in enumerate(dbs) if b not in kept)
    return math.inf if power == 0 else -10 * math.log10(power)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="realesrgan-x4plus")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument(
        "--tables",
        nargs="+",
        default=["quality", "niqe-noise", "sensitivity"],
        choices=["quality", "niqe-noise", "sensitivity"],
    )
    args = parser.parse_args()
    net = load_model(args.model).module.eval()
    if not isinstance(net, RRDBNet):
        raise SystemExit(f"{args.model}: int8 needs an RRDBNet, not {type(net).__name__}")
    images = Path(args.shared) / "data" / "images"
    print(f"## int8 quality: {args.model}\n\n{machine_line()}")
    if not images.is_dir():
        print(f"\n(no {images}: the Set14 columns are left out)")
    reference: dict[str, np.ndarray] = {}
    if "quality" in args.tables or "niqe-noise" in args.tables:
        reference = quality_table(net, images)
    if "niqe-noise" in args.tables:
        niqe_noise_table(reference)
    if "sensitivity" in args.tables:
        sensitivity_table(net, images)


if __name__ == "__main__":
    main()
