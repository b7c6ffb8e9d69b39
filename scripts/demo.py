"""The main job (`make run`): a noisy low-resolution photo through denoise -> ESRGAN -> save.

Makes a sample input from scikit-image's "chelsea" photo (x1/4 with MATLAB-style bicubic, plus
mild sensor noise), runs the YAML pipeline ``pipelines/examples/denoise-upscale.yaml`` on it
with the default model (realesrgan-x4plus when installed), then writes a side-by-side comparison (bicubic | ESRGAN |
original) and prints the paths and PSNR figures.

    python scripts/demo.py [--out out/demo] [--model default]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from pipelines.cli import main as pipelines_main
from pipelines.imresize import imresize
from pipelines.io.images import read_image, write_image
from training.metrics import psnr

EXAMPLE = Path(__file__).resolve().parents[1] / "pipelines" / "examples" / "denoise-upscale.yaml"


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()  # putText draws in place
    cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def sample_input(out: Path) -> tuple[Path, np.ndarray]:
    """The LR input (written to ``out``) and the HR original it was made from."""
    hr = data.chelsea()
    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    lr = imresize(hr, 0.25).astype(np.float64)
    lr += np.random.default_rng(0).normal(0.0, 2.0, lr.shape)  # mild sensor noise
    lr_path = write_image(
        out / "chelsea_lr.png", np.clip(lr + 0.5, 0, 255).astype(np.uint8), overwrite=True
    )
    return lr_path, hr


def _model_name(model: str) -> str:
    """The model's name as the catalogue resolves it (``default`` names the real default)."""
    from esrgan_plugin.models.catalogue import DEFAULT_NAME, catalogue

    return catalogue().default_name() if model == DEFAULT_NAME else model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    out = Path(args.out)
    lr_path, hr = sample_input(out)
    status = pipelines_main(
        [
            "run",
            str(EXAMPLE),
            "--quiet",
            "--set",
            f"src.path={lr_path}",
            "--set",
            f"sr.model={args.model}",
            "--set",
            f"out.path={out}/{{name}}_x4.png",
            "--set",
            "out.overwrite=true",
        ]
    )
    if status:
        return status
    sr = read_image(out / "chelsea_lr_x4.png")
    bicubic = imresize(read_image(lr_path), 4)
    panels = [
        labelled(bicubic, "bicubic"),
        labelled(sr, f"denoise + ESRGAN ({_model_name(args.model)})"),
        labelled(hr, "original"),
    ]
    comparison = write_image(
        out / "chelsea_comparison.png", np.concatenate(panels, axis=1), overwrite=True
    )
    print(f"input (LR, noisy): {lr_path}")
    print(f"ESRGAN x4:         {out / 'chelsea_lr_x4.png'}")
    print(f"comparison:        {comparison}")
    bicubic_db, pipeline_db = psnr(bicubic, hr, 4, True), psnr(sr, hr, 4, True)
    print(f"PSNR-Y vs original: bicubic {bicubic_db:.2f} dB, pipeline {pipeline_db:.2f} dB")
    note = psnr_note(bicubic_db, pipeline_db)
    if note:
        print(note)
    return 0


def psnr_note(bicubic_db: float, pipeline_db: float) -> str | None:
    """Why a pipeline scoring below bicubic in PSNR is expected of a GAN model (None otherwise)."""
    if pipeline_db >= bicubic_db:
        return None
    return (
        "note: a lower PSNR than bicubic is expected of a GAN model such as realesrgan-x4plus: "
        "PSNR rewards the blur of an average, while a GAN draws plausible texture that differs "
        "pixel by pixel from the original (the perception-distortion trade-off, ESRGAN paper "
        "section 3.4). Judge the comparison image; for PSNR, use a PSNR-oriented model "
        "(--model default-psnr)."
    )


if __name__ == "__main__":
    raise SystemExit(main())
