"""The main job (`make run`): upscale a sample photo with the default model, next to bicubic.

Takes scikit-image's "chelsea" photo, makes its x1/4 low-resolution version with MATLAB-style
bicubic, writes that as the input, upscales it x4 with the shipped default model, and writes a
side-by-side comparison (bicubic | ESRGAN | original). Prints the paths.

    python scripts/demo.py [--out out/demo] [--model default]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from esrgan_plugin.checkpoint import load_model
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from pipelines.imageio import write_image
from pipelines.imresize import imresize


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(image)
    cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    out = Path(args.out)
    hr = data.chelsea()
    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    lr = imresize(hr, 0.25)
    model = load_model(args.model)
    sr = Upscaler(model, UpscaleOptions(precision="fp32")).upscale(lr)
    bicubic = imresize(lr, 4)
    panels = [labelled(bicubic, "bicubic"), labelled(sr, f"ESRGAN ({args.model})"), labelled(hr, "original")]
    paths = {
        "input (LR)": write_image(out / "chelsea_lr.png", lr, overwrite=True),
        "ESRGAN x4": write_image(out / "chelsea_x4.png", sr, overwrite=True),
        "comparison": write_image(out / "chelsea_comparison.png", np.concatenate(panels, axis=1), overwrite=True),
    }
    for what, path in paths.items():
        print(f"{what}: {path}")


if __name__ == "__main__":
    main()
