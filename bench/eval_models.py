"""Quality of the shipped models on Set14 baboon and comic, next to bicubic upscaling.

LR images are made from the HR with the project's MATLAB-compatible bicubic (x1/4, antialiased);
PSNR and SSIM are on the Y channel with 4 border pixels cropped (as SR papers report them);
sharpness is the mean Sobel gradient magnitude of Y relative to the HR's. Prints a Markdown
table.

    python bench/eval_models.py [--models default-psnr default-gan] [--shared ../shared]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from esrgan_plugin.checkpoint import load_model
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from pipelines.imresize import imresize
from pipelines.io.images import read_image
from training.metrics import mean_gradient_magnitude, psnr, ssim

IMAGES = ("set14_baboon_hr.png", "set14_comic_hr.png")
SCALE = 4


def make_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    hr = read_image(path)
    hr = hr[: hr.shape[0] // SCALE * SCALE, : hr.shape[1] // SCALE * SCALE]
    return imresize(hr, 1 / SCALE), hr


def score(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float, float]:
    return (
        psnr(sr, hr, crop_border=SCALE, test_y_channel=True),
        ssim(sr, hr, crop_border=SCALE, test_y_channel=True),
        mean_gradient_magnitude(sr) / mean_gradient_magnitude(hr),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["default-psnr", "default-gan"])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = parser.parse_args()
    folder = Path(args.shared) / "data" / "images"
    pairs = {name.split("_")[1]: make_pair(folder / name) for name in IMAGES}
    methods: dict[str, object] = {"bicubic": None}
    for name in args.models:
        methods[name] = Upscaler(
            load_model(name), UpscaleOptions(tile=0, precision="fp32", device="cpu")
        )
    print("| method | image | PSNR-Y (dB) | SSIM-Y | sharpness vs HR |")
    print("| --- | --- | ---: | ---: | ---: |")
    for method, upscaler in methods.items():
        results = []
        for image, (lr, hr) in pairs.items():
            sr = imresize(lr, SCALE) if upscaler is None else upscaler.upscale(lr)  # type: ignore[attr-defined]
            results.append(score(sr, hr))
            p, s, g = results[-1]
            print(f"| {method} | {image} | {p:.2f} | {s:.4f} | {g:.2f} |")
        p, s, g = np.mean(results, axis=0)
        print(f"| {method} | **mean** | **{p:.2f}** | **{s:.4f}** | **{g:.2f}** |")


if __name__ == "__main__":
    main()
