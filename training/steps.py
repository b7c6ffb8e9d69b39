"""One training iteration: the PSNR stage's L1 step, the GAN stage's alternating G and D steps
(RaGAN + perceptual + L1), mixed precision, and the EMA update."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from training.config import TrainConfig
from training.losses import ragan_discriminator_terms, ragan_generator_loss
from training.networks import Networks


def _autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if config.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _backward_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    nets: Networks,
    params: Any,
    clip: float | None,
) -> None:
    optimizer.zero_grad(set_to_none=True)
    if nets.scaler is not None:
        nets.scaler.scale(loss).backward()
        nets.scaler.unscale_(optimizer)
    else:
        loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(params, clip)
    if nets.scaler is not None:
        nets.scaler.step(optimizer)
    else:
        optimizer.step()


def psnr_step(
    nets: Networks, lr: torch.Tensor, hr: torch.Tensor, config: TrainConfig, device: torch.device
) -> dict[str, torch.Tensor]:
    """Stage 1: L1 between the SR output and the HR crop."""
    with _autocast(config, device):
        l_pix = F.l1_loss(nets.train_g(lr).float(), hr)
    _backward_step(
        l_pix, nets.optimizer_g, nets, nets.generator.parameters(), config.optim.grad_clip
    )
    return {"l_pix": l_pix.detach()}


def gan_step(
    nets: Networks, lr: torch.Tensor, hr: torch.Tensor, config: TrainConfig, device: torch.device
) -> dict[str, torch.Tensor]:
    """Stage 2: a generator update (D frozen), then a discriminator update on detached SR."""
    assert (
        nets.discriminator is not None
        and nets.optimizer_d is not None
        and nets.perceptual is not None
    )
    g = config.gan
    nets.discriminator.requires_grad_(False)
    with _autocast(config, device):
        sr = nets.train_g(lr).float()
        l_pix = F.l1_loss(sr, hr)
        l_percep = nets.perceptual(sr, hr)
        real_logits = nets.discriminator(hr).detach().float()
        l_g_gan = ragan_generator_loss(real_logits, nets.discriminator(sr).float())
        l_g = g.perceptual_weight * l_percep + g.gan_weight * l_g_gan + g.pixel_weight * l_pix
    _backward_step(l_g, nets.optimizer_g, nets, nets.generator.parameters(), config.optim.grad_clip)

    nets.discriminator.requires_grad_(True)
    with _autocast(config, device):
        real_d = nets.train_d(hr).float()
        fake_d = nets.train_d(sr.detach()).float()
        l_d_real, l_d_fake = ragan_discriminator_terms(real_d, fake_d)
        l_d = l_d_real + l_d_fake
    _backward_step(
        l_d, nets.optimizer_d, nets, nets.discriminator.parameters(), config.optim.grad_clip
    )
    if nets.scaler is not None:
        nets.scaler.update()
    return {
        "l_g": l_g.detach(),
        "l_pix": l_pix.detach(),
        "l_percep": l_percep.detach(),
        "l_g_gan": l_g_gan.detach(),
        "l_d": l_d.detach(),
        "l_d_real": l_d_real.detach(),
        "l_d_fake": l_d_fake.detach(),
        "out_d_real": real_d.detach().mean(),
        "out_d_fake": fake_d.detach().mean(),
    }


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)
