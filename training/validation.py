"""Validation during training: PSNR and SSIM on the Y channel, ``scale`` border pixels cropped."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from esrgan_plugin.inference import UpscaleOptions, Upscaler
from training.config import TrainConfig
from training.metrics import psnr, ssim


@dataclass(frozen=True)
class Validator:
    """Whole-image validation pairs (LR made with MATLAB bicubic) and how to score them."""

    pairs: list[tuple[np.ndarray, np.ndarray]]
    scale: int
    device: torch.device

    @classmethod
    def from_config(cls, config: TrainConfig, device: torch.device) -> Validator | None:
        if config.data.validation is None:
            return None
        from training.data import validation_pairs_from_config

        return cls(validation_pairs_from_config(config), config.model.scale, device)

    def evaluate(self, generator: nn.Module) -> dict[str, float]:
        """Mean PSNR/SSIM (Y, crop = scale) of ``generator`` over the validation pairs."""
        upscaler = Upscaler(
            generator, UpscaleOptions(tile=0, precision="fp32", device=str(self.device))
        )
        psnrs, ssims = [], []
        for lr, hr in self.pairs:
            sr = upscaler.upscale(lr)
            psnrs.append(psnr(sr, hr, crop_border=self.scale, test_y_channel=True))
            ssims.append(ssim(sr, hr, crop_border=self.scale, test_y_channel=True))
        return {"val_psnr_y": float(np.mean(psnrs)), "val_ssim_y": float(np.mean(ssims))}

    def __bool__(self) -> bool:
        return bool(self.pairs)
