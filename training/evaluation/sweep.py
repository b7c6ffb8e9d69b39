"""The perception-distortion sweep (paper section 3.4, Fig. 10): network interpolation at every
alpha between a PSNR-oriented and a GAN model, each upscaling every image, scored.

Models are interpolated in memory (no files written). Bicubic upscaling and (with HR images)
the HR images themselves are scored as reference points. The result holds per-image and mean
values per method, and small crops for the report's side-by-side view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from training.evaluation.evaluate import Evaluation, Sample, score
from training.evaluation.measures import MeasureContext, to_8bit_colour
from training.evaluation.sweep_params import SweepParams, parse_alphas


@dataclass(frozen=True)
class Crop:
    """A crop window in SR pixels: top, left, side."""

    top: int
    left: int
    size: int


@dataclass
class ImageCrops:
    """The crop windows of one image and each method's pixels inside them (8-bit)."""

    name: str
    windows: list[Crop]
    pixels: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class SweepResult:
    """Everything a report shows: methods in order with their evaluations, crops, context."""

    psnr_model: str
    gan_model: str
    alphas: list[float]
    scale: int
    has_hr: bool
    methods: dict[str, Evaluation]
    crops: list[ImageCrops]
    notes: list[str]
    metrics: tuple[str, ...]


def alpha_label(alpha: float) -> str:
    """The method name of one interpolation weight, e.g. ``alpha 0.3``."""
    return f"alpha {alpha:g}"


def crop_windows(reference: np.ndarray, size: int, count: int) -> list[Crop]:
    """The image centre and the most detailed non-overlapping squares (Sobel energy), ``count`` in all."""
    import cv2

    h, w = reference.shape[:2]
    side = min(size, h, w)
    grey = reference if reference.ndim == 2 else reference[..., :3].mean(axis=2)
    energy = np.hypot(
        cv2.Sobel(grey.astype(np.float64), cv2.CV_64F, 1, 0),
        cv2.Sobel(grey.astype(np.float64), cv2.CV_64F, 0, 1),
    )
    windows = [Crop((h - side) // 2, (w - side) // 2, side)]
    cells = [
        (float(energy[t : t + side, left : left + side].mean()), t, left)
        for t in range(0, h - side + 1, side)
        for left in range(0, w - side + 1, side)
    ]
    for _, top, left in sorted(cells, reverse=True):
        if len(windows) >= count:
            break
        if all(abs(top - c.top) >= side or abs(left - c.left) >= side for c in windows):
            windows.append(Crop(top, left, side))
    return windows


def cut(image: np.ndarray, window: Crop) -> np.ndarray:
    """The 8-bit pixels of ``image`` inside ``window``."""
    return to_8bit_colour(image)[
        window.top : window.top + window.size, window.left : window.left + window.size
    ].copy()


Progress = Callable[[int, int], None]


def run_sweep(
    params: SweepParams,
    metrics: tuple[str, ...],
    context: MeasureContext,
    notes: list[str],
    progress: Progress | None = None,
) -> SweepResult:
    """Upscale every image at every alpha (models interpolated in memory) and score it."""
    from esrgan_plugin.inference import UpscaleOptions, Upscaler
    from esrgan_plugin.interpolate import interpolate_models
    from esrgan_plugin.models.loading import load_model
    from pipelines.api import imresize
    from training.evaluation.run_eval import EvalUsageError, input_pairs

    alphas = parse_alphas(params.alphas)
    model_a, model_b = load_model(params.psnr_model), load_model(params.gan_model)
    interpolate_models(model_a, model_b, 0.0)  # same architecture, or a one-line error now
    inputs = [(name, load()) for name, load in input_pairs(params.lr, params.hr, model_a.scale)]
    if not inputs:
        raise EvalUsageError(f"no images found in {params.lr or params.hr}")
    has_hr = params.hr is not None
    # the PyTorch engines: each alpha is new weights, which an exporting engine would export anew
    options = UpscaleOptions(
        tile=params.tile, precision=params.precision, device=params.device, engine="torch"
    )
    methods: dict[str, Evaluation] = {}
    crops = [
        ImageCrops(
            name,
            crop_windows(
                hr if hr is not None else imresize(lr, model_a.scale),
                params.crop_size,
                params.crops_per_image,
            ),
        )
        for name, (lr, hr, _, _) in inputs
    ]
    total, done = (len(alphas) + 1) * len(inputs), 0

    def record(method: str, outputs: Callable[[np.ndarray], np.ndarray]) -> None:
        nonlocal done
        evaluation = methods.setdefault(method, Evaluation(metrics))
        for (name, (lr, hr, lr_label, hr_label)), image_crops in zip(inputs, crops, strict=True):
            sr = outputs(lr)
            sample = Sample(name, sr, hr, lr, f"{name} ({method})", hr_label, lr_label)
            evaluation.rows.append((name, score(sample, metrics, context, notes)))
            image_crops.pixels[method] = [cut(sr, w) for w in image_crops.windows]
            done += 1
            if progress:
                progress(done, total)

    record("bicubic", lambda lr: imresize(lr, model_a.scale))
    for alpha in alphas:
        upscaler = Upscaler(interpolate_models(model_a, model_b, alpha), options)
        record(alpha_label(alpha), upscaler.upscale)
    if has_hr:
        reference = Evaluation(metrics)
        hr_metrics = tuple(m for m in metrics if m in ("niqe", "pi"))
        for (name, (_, hr, _, _)), image_crops in zip(inputs, crops, strict=True):
            assert hr is not None
            reference.rows.append((name, score(Sample(name, hr), hr_metrics, context, notes)))
            image_crops.pixels["HR"] = [cut(hr, w) for w in image_crops.windows]
        methods["HR"] = reference
    return SweepResult(
        params.psnr_model,
        params.gan_model,
        alphas,
        model_a.scale,
        has_hr,
        methods,
        crops,
        notes,
        metrics,
    )
