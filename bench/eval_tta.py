"""Self-ensemble (``tta``) gain and uncertainty-map validation on Set14 (``make eval-tta``).

For each model and each Set14 image in ``../shared/data/images`` (baboon and comic): the HR is
cropped to a multiple of 4, the LR made from it with the MATLAB-compatible bicubic (x1/4, as
``esrgan eval --model`` does), and the LR upscaled twice on the CPU in fp32, whole images: plainly,
and with the x8 self-ensemble, whose spread is the uncertainty map. Printed as Markdown:

* PSNR-Y / SSIM-Y (4 border pixels cropped) without and with ``tta``, the gain, and NIQE (no
  reference; lower looks more natural): averaging eight GAN outputs also averages their texture;
* Spearman's rho between the uncertainty map and the real error ``|SR - HR|`` (mean over RGB),
  both averaged over 8x8 blocks after the border crop, for the plain output and the ensemble's;
  with ``--reference`` pairs (GAN=PSNR), also for the disagreement alone and the combined map
  (``esrgan_plugin.uncertainty``): by default default-gan with its own PSNR model, and
  realesrgan-x4plus with default-psnr (not its pair: Real-ESRNet is not in the catalogue);
* the map's percentiles (to choose the gain of map images) and the seconds taken.

    python bench/eval_tta.py [--models default-psnr realesrgan-x4plus ...]
                             [--reference GAN=PSNR ...] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.models.loading import load_model
from esrgan_plugin.pixels import to_float
from esrgan_plugin.uncertainty import combine, disagreement
from pipelines.api import imresize, read_image
from training.evaluation.niqe import load_niqe_model, niqe
from training.metrics import psnr, ssim

SCALE = 4
BLOCK = 8
DEFAULT_MODELS = ["default-psnr", "default-gan", "realesrgan-x4plus", "realesr-animevideov3-x4"]
DEFAULT_REFERENCES = ["default-gan=default-psnr", "realesrgan-x4plus=default-psnr"]


def set14(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Image name -> (LR, HR): the Set14 HR files, cropped to a multiple of the scale."""
    pairs = {}
    for path in sorted(folder.glob("set14_*_hr.png")):
        hr = read_image(path)[..., :3]
        hr = hr[: hr.shape[0] // SCALE * SCALE, : hr.shape[1] // SCALE * SCALE]
        pairs[path.stem.removeprefix("set14_").removesuffix("_hr")] = (imresize(hr, 1 / SCALE), hr)
    if not pairs:
        raise SystemExit(f"no set14_*_hr.png in {folder}")
    return pairs


def block_mean(values: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(H, W) -> the mean of each whole ``block`` x ``block`` block, flattened."""
    h, w = values.shape[0] // block * block, values.shape[1] // block * block
    v = values[:h, :w].reshape(h // block, block, w // block, block)
    return v.mean(axis=(1, 3)).ravel()


def rank_correlation(uncertainty: np.ndarray, sr: np.ndarray, hr: np.ndarray) -> float:
    """Spearman's rho of block-averaged uncertainty and block-averaged |SR - HR| (border cropped)."""
    error = np.abs(to_float(sr) - to_float(hr)).mean(axis=2)
    crop = (slice(SCALE, -SCALE), slice(SCALE, -SCALE))
    rho = spearmanr(block_mean(uncertainty[crop]), block_mean(error[crop])).statistic
    return float(rho)


NIQE_MODEL = load_niqe_model()


def scores(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float, float]:
    """PSNR-Y, SSIM-Y and NIQE, 4 border pixels cropped."""
    return (
        psnr(sr, hr, crop_border=SCALE, test_y_channel=True),
        ssim(sr, hr, crop_border=SCALE, test_y_channel=True),
        niqe(sr, crop_border=SCALE, model=NIQE_MODEL),
    )


def upscalers(name: str) -> tuple[Upscaler, Upscaler]:
    """The model plainly and with the self-ensemble (fp32, CPU, whole images)."""
    model = load_model(name)
    options = {"tile": 0, "precision": "fp32", "device": "cpu"}
    return Upscaler(model, UpscaleOptions(**options)), Upscaler(
        model, UpscaleOptions(**options, tta=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument("--reference", nargs="*", default=DEFAULT_REFERENCES, metavar="GAN=PSNR")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = parser.parse_args()
    pairs = set14(Path(args.shared) / "data" / "images")
    references = dict(item.split("=", 1) for item in args.reference)
    quality, ranks, spreads = [], [], []
    plain_outputs: dict[tuple[str, str], np.ndarray] = {}
    for name in args.models:
        plain, ensemble = upscalers(name)
        for image, (lr, hr) in pairs.items():
            start = time.perf_counter()
            sr = plain.upscale(lr)
            middle = time.perf_counter()
            sr_tta, spread = ensemble.upscale_with_uncertainty(lr)
            end = time.perf_counter()
            plain_outputs[(name, image)] = sr
            (p0, s0, n0), (p1, s1, n1) = scores(sr, hr), scores(sr_tta, hr)
            quality.append(
                f"| {name} | {image} | {p0:.2f} | {p1:.2f} | {p1 - p0:+.2f} | {s0:.4f} | {s1:.4f} "
                f"| {s1 - s0:+.4f} | {n0:.3f} | {n1:.3f} | {middle - start:.1f} | {end - middle:.1f} |"
            )
            rho_plain = rank_correlation(spread, sr, hr)
            rho_tta = rank_correlation(spread, sr_tta, hr)
            ranks.append(f"| {name} | {image} | spread | {rho_plain:.3f} | {rho_tta:.3f} |")
            q = np.percentile(spread, [50, 90, 99, 100])
            spreads.append(f"| {name} | {image} | " + " | ".join(f"{v:.4f}" for v in q) + " |")
            if name in references:
                reference = Upscaler(load_model(references[name]), plain.options)
                ref_sr = reference.upscale(lr)
                difference = disagreement(sr, ref_sr)
                for label, values in (
                    (f"disagreement with {references[name]}", difference),
                    (f"combined with {references[name]}", combine(spread, difference)),
                ):
                    rho = rank_correlation(values, sr, hr)
                    ranks.append(f"| {name} | {image} | {label} | {rho:.3f} | |")
    print(
        "\n| model | image | PSNR-Y | PSNR-Y tta | gain (dB) | SSIM-Y | SSIM-Y tta | gain ", end=""
    )
    print("| NIQE | NIQE tta | seconds plain | seconds tta |")
    print("| --- | --- |" + " ---: |" * 10)
    print("\n".join(quality))
    print("\n| model | image | map | rho vs plain output's error | rho vs tta output's error |")
    print("| --- | --- | --- | ---: | ---: |")
    print("\n".join(ranks))
    print("\n| model | image | spread p50 | p90 | p99 | max |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(spreads))


if __name__ == "__main__":
    main()
