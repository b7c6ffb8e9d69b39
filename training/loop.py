"""The two-stage ESRGAN training loop (paper section 4.1).

Stage ``psnr``: L1 only. Stage ``gan``: starts from a stage-1 generator; the generator minimises
``perceptual + lambda * RaGAN + eta * L1`` and the discriminator the RaGAN loss, updated
alternately. Checkpoints (networks, optimisers, EMA, RNG, iteration) are written atomically;
a resumed run draws the same batches and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
from esrgan_plugin.arch.srresnet import SRResNet, SRResNetConfig
from esrgan_plugin.checkpoint import load_model, save_model
from esrgan_plugin.device import resolve_device
from training.config import TrainConfig
from training.discriminator import VGGStyleDiscriminator
from training.errors import TrainingError
from training.logs import MetricsLog
from training.losses import PerceptualLoss, ragan_discriminator_loss, ragan_generator_loss
from training.state import CHECKPOINT_NAME, load_checkpoint, lr_at, save_checkpoint
from training.validation import Validator

log = logging.getLogger(__name__)

GENERATOR_NAME = "generator.safetensors"

Generator = RRDBNet | SRResNet


@dataclass
class Networks:
    """Everything that learns, plus what optimises it."""

    generator: Generator
    optimizer_g: torch.optim.Optimizer
    discriminator: VGGStyleDiscriminator | None = None
    optimizer_d: torch.optim.Optimizer | None = None
    perceptual: PerceptualLoss | None = None
    ema: Generator | None = None
    scaler: torch.amp.GradScaler | None = None

    def exported(self) -> Generator:
        """The generator to publish: the EMA copy when there is one."""
        return self.ema if self.ema is not None else self.generator


@dataclass(frozen=True)
class TrainResult:
    generator_path: Path
    iteration: int
    last_losses: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)


def build_networks(config: TrainConfig, device: torch.device) -> Networks:
    """Generator (from scratch or the stage-1 model), and for ``gan`` the D and the VGG loss."""
    torch.manual_seed(config.seed)
    m = config.model
    generator = build_generator(config)
    if config.stage == "gan":
        _load_pretrained(generator, config)
    generator.to(device).train()
    opt = config.optim
    nets = Networks(
        generator, torch.optim.Adam(generator.parameters(), lr=opt.lr or 0.0, betas=opt.betas)
    )
    if opt.ema_decay is not None:
        nets.ema = copy.deepcopy(generator).eval().requires_grad_(False)
    if config.stage == "gan":
        nets.discriminator = VGGStyleDiscriminator(
            m.out_channels, config.gan.discriminator_features, config.data.hr_size
        )
        nets.discriminator.to(device).train()
        nets.optimizer_d = torch.optim.Adam(
            nets.discriminator.parameters(),
            lr=opt.discriminator_lr or opt.lr or 0.0,
            betas=opt.betas,
        )
        weights = config.gan.vgg_weights
        if weights not in ("imagenet", "random"):
            weights = str(config.resolve(weights))
        nets.perceptual = PerceptualLoss(
            config.gan.perceptual_layers, weights=weights, seed=config.seed
        ).to(device)
    if config.precision == "fp16":
        if device.type != "cuda":
            raise TrainingError(
                f"precision fp16 needs a CUDA device (got {device}); use bf16 or fp32"
            )
        nets.scaler = torch.amp.GradScaler("cuda")
    return nets


def build_generator(config: TrainConfig) -> Generator:
    """A freshly initialised generator as the model section describes."""
    m = config.model
    if m.architecture == "srresnet":
        return SRResNet(
            SRResNetConfig(
                m.in_channels, m.out_channels, m.num_features, m.num_blocks, m.scale, m.batch_norm
            )
        )
    return RRDBNet(
        RRDBNetConfig.for_scale(
            m.scale,
            num_features=m.num_features,
            num_blocks=m.num_blocks,
            growth_channels=m.growth_channels,
            in_channels=m.in_channels,
            out_channels=m.out_channels,
        )
    )


def _load_pretrained(generator: Generator, config: TrainConfig) -> None:
    if not config.gan.pretrained:
        raise TrainingError(
            "stage gan needs gan.pretrained: the stage-1 (psnr) generator or its experiment folder"
        )
    path = config.resolve(config.gan.pretrained)
    if path.is_dir():
        path = path / GENERATOR_NAME
    model = load_model(path)
    if model.config != generator.config:
        raise TrainingError(
            f"{path}: pretrained generator {model.config} does not match the model section {generator.config}"
        )
    generator.load_state_dict(model.module.state_dict())


# --------------------------------------------------------------------------- one iteration


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
        l_pix = F.l1_loss(nets.generator(lr).float(), hr)
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
        sr = nets.generator(lr).float()
        l_pix = F.l1_loss(sr, hr)
        l_percep = nets.perceptual(sr, hr)
        real_logits = nets.discriminator(hr).detach().float()
        l_g_gan = ragan_generator_loss(real_logits, nets.discriminator(sr).float())
        l_g = g.perceptual_weight * l_percep + g.gan_weight * l_g_gan + g.pixel_weight * l_pix
    _backward_step(l_g, nets.optimizer_g, nets, nets.generator.parameters(), config.optim.grad_clip)

    nets.discriminator.requires_grad_(True)
    with _autocast(config, device):
        l_d = ragan_discriminator_loss(
            nets.discriminator(hr).float(), nets.discriminator(sr.detach()).float()
        )
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
    }


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)


# --------------------------------------------------------------------------- checkpoints


def training_state(nets: Networks, iteration: int) -> dict[str, Any]:
    state: dict[str, Any] = {
        "iteration": iteration,
        "generator": nets.generator.state_dict(),
        "optimizer_g": nets.optimizer_g.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    if nets.ema is not None:
        state["ema"] = nets.ema.state_dict()
    if nets.discriminator is not None and nets.optimizer_d is not None:
        state["discriminator"] = nets.discriminator.state_dict()
        state["optimizer_d"] = nets.optimizer_d.state_dict()
    if nets.scaler is not None:
        state["scaler"] = nets.scaler.state_dict()
    return state


def restore_state(nets: Networks, state: dict[str, Any]) -> int:
    try:
        nets.generator.load_state_dict(state["generator"])
        nets.optimizer_g.load_state_dict(state["optimizer_g"])
        if nets.ema is not None:
            nets.ema.load_state_dict(state["ema"])
        if nets.discriminator is not None and nets.optimizer_d is not None:
            nets.discriminator.load_state_dict(state["discriminator"])
            nets.optimizer_d.load_state_dict(state["optimizer_d"])
        if nets.scaler is not None and "scaler" in state:
            nets.scaler.load_state_dict(state["scaler"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise TrainingError(
            f"checkpoint does not match this experiment's configuration ({str(exc).splitlines()[0]})"
        ) from None
    torch.set_rng_state(state["torch_rng"])
    return int(state["iteration"])


def export_generator(nets: Networks, run_dir: Path, config: TrainConfig, iteration: int) -> Path:
    """The generator (EMA if enabled) as canonical safetensors, loadable by ``esrgan upscale``."""
    metadata: dict[str, object] = {
        "name": config.name,
        "stage": config.stage,
        "iteration": iteration,
        "ema": nets.ema is not None,
        "seed": config.seed,
    }
    if nets.perceptual is not None:
        metadata["vgg_weights"] = nets.perceptual.weights_source
        metadata["losses"] = (
            f"{config.gan.perceptual_weight}*perceptual{sorted(config.gan.perceptual_layers)} + "
            f"{config.gan.gan_weight}*RaGAN + {config.gan.pixel_weight}*L1"
        )
    else:
        metadata["losses"] = "L1"
    return save_model(run_dir / GENERATOR_NAME, nets.exported(), metadata)


# --------------------------------------------------------------------------- the run


def train(
    config: TrainConfig, resume: bool = False, stop_at: int | None = None, progress: bool = True
) -> TrainResult:
    """Run (or resume) an experiment; ``stop_at`` ends early, as an interruption would."""
    from training.data import make_training_batches

    device = resolve_device(config.device)
    run_dir = config.resolve(config.output_dir)
    checkpoint = run_dir / CHECKPOINT_NAME
    if checkpoint.exists() and not resume:
        raise TrainingError(
            f"{run_dir}: experiment already has a checkpoint; pass --resume to continue it or choose a new output_dir"
        )
    nets = build_networks(config, device)
    start = restore_state(nets, load_checkpoint(checkpoint)) if resume else 0
    end = config.optim.iterations if stop_at is None else min(stop_at, config.optim.iterations)
    if start >= config.optim.iterations:
        log.warning("%s: already trained for %d iterations", run_dir, start)
    validator = Validator.from_config(config, device)
    metrics = MetricsLog(run_dir, resume_from=start)
    step = gan_step if config.stage == "gan" else psnr_step
    losses: dict[str, float] = {}
    scores: dict[str, float] = {}
    batches = make_training_batches(config, start_iteration=start)
    bar = _progress_bar(start, config.optim.iterations, enabled=progress)
    started = time.perf_counter()
    try:
        for iteration, batch in zip(range(start + 1, end + 1), batches, strict=False):
            _set_learning_rates(nets, config, iteration - 1)
            lr_img = batch["lr"].to(device, non_blocking=True)
            hr_img = batch["hr"].to(device, non_blocking=True)
            raw = step(nets, lr_img, hr_img, config, device)
            losses = {k: float(v) for k, v in raw.items()}
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                raise TrainingError(
                    f"non-finite loss {bad[0]}={losses[bad[0]]} at iteration {iteration}; stopped, the last good "
                    f"checkpoint {checkpoint} is kept (lower optim.lr or set optim.grad_clip)"
                )
            if nets.ema is not None:
                update_ema(nets.ema, nets.generator, config.optim.ema_decay or 0.0)
            row: dict[str, float] = {}
            if iteration % config.validate_every == 0 or iteration == end:
                scores = validator.evaluate(nets.exported()) if validator else {}
                row.update(scores)
            if iteration % config.log_every == 0 or row:
                row.update(losses)
                row["lr"] = nets.optimizer_g.param_groups[0]["lr"]
                row["seconds"] = time.perf_counter() - started
                metrics.write(iteration, row)
            if iteration % config.checkpoint_every == 0 or iteration == end:
                save_checkpoint(checkpoint, training_state(nets, iteration))
                export_generator(nets, run_dir, config, iteration)
            bar.set_postfix(
                {k: f"{v:.4g}" for k, v in losses.items()}
                | {k: f"{v:.3f}" for k, v in scores.items()}
            )
            bar.update(1)
    finally:
        bar.close()
        metrics.close()
    return TrainResult(run_dir / GENERATOR_NAME, max(end, start), losses, scores)


def _set_learning_rates(nets: Networks, config: TrainConfig, iteration: int) -> None:
    opt = config.optim
    milestones = opt.milestones or []
    for optimizer, base in (
        (nets.optimizer_g, opt.lr),
        (nets.optimizer_d, opt.discriminator_lr or opt.lr),
    ):
        if optimizer is None:
            continue
        for group in optimizer.param_groups:
            group["lr"] = lr_at(iteration, base or 0.0, milestones, opt.gamma)


def _progress_bar(start: int, total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, initial=start, unit="it", desc="train", disable=not enabled, dynamic_ncols=True
    )
