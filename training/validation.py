"""Validation during training: PSNR and SSIM on the Y channel, ``scale`` border pixels cropped,
and NIQE (no reference) when the experiment asks for it (``validate_niqe: true``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from esrgan_plugin.inference import UpscaleOptions, Upscaler
from training.config import TrainConfig
from training.errors import TrainingError
from training.evaluation.niqe import BLOCK, niqe
from training.metrics import psnr, ssim


@dataclass(frozen=True)
class Validator:
    """Whole-image validation pairs (LR made with MATLAB bicubic) and how to score them."""

    pairs: list[tuple[np.ndarray, np.ndarray]]
    scale: int
    device: torch.device
    niqe: bool = False

    @classmethod
    def from_config(cls, config: TrainConfig, device: torch.device) -> Validator | None:
        if config.data.validation is None:
            return None
        from training.data import validation_pairs_from_config

        pairs = validation_pairs_from_config(config)
        if config.validate_niqe:
            _check_niqe_sizes(pairs, config.model.scale)
        return cls(pairs, config.model.scale, device, config.validate_niqe)

    def evaluate(self, generator: nn.Module) -> dict[str, float]:
        """Mean PSNR/SSIM (Y, crop = scale), and NIQE if asked, over the validation pairs."""
        upscaler = Upscaler(
            generator,
            # the PyTorch engines: weights that change every validation would be exported anew
            UpscaleOptions(tile=0, precision="fp32", device=str(self.device), engine="torch"),
        )
        psnrs, ssims, niqes = [], [], []
        for lr, hr in self.pairs:
            sr = upscaler.upscale(lr)
            psnrs.append(psnr(sr, hr, crop_border=self.scale, test_y_channel=True))
            ssims.append(ssim(sr, hr, crop_border=self.scale, test_y_channel=True))
            if self.niqe:
                niqes.append(_niqe_or_nan(sr, self.scale))
        scores = {"val_psnr_y": float(np.mean(psnrs)), "val_ssim_y": float(np.mean(ssims))}
        if self.niqe:
            scores["val_niqe"] = float(np.mean(niqes))
        return scores

    def __bool__(self) -> bool:
        return bool(self.pairs)


def _niqe_or_nan(sr: np.ndarray, scale: int) -> float:
    """NIQE of a validation output; NaN where it is undefined (e.g. an early, flat output)."""
    try:
        return niqe(sr, crop_border=scale)
    except ValueError:
        return math.nan


def _check_niqe_sizes(pairs: list[tuple[np.ndarray, np.ndarray]], scale: int) -> None:
    """NIQE pools 96x96 blocks and needs two of them: refuse smaller validation images now."""
    side = BLOCK + 2 * scale
    for index, (_, hr) in enumerate(pairs):
        h, w = hr.shape[:2]
        if (h - 2 * scale) // BLOCK * ((w - 2 * scale) // BLOCK) < 2:
            raise TrainingError(
                f"validate_niqe: validation image {index + 1} is {w}x{h}; NIQE needs two "
                f"96x96 blocks after the {scale}-pixel border crop (e.g. {2 * BLOCK + 2 * scale}x{side})"
            )
