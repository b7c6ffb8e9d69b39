"""The networks a training run optimises: the generator (from scratch or stage 1), its EMA copy,
and for the GAN stage the discriminator and the VGG perceptual loss, with their optimisers."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from esrgan_plugin.arch.rrdbnet import RRDBNet, RRDBNetConfig
from esrgan_plugin.arch.srresnet import SRResNet, SRResNetConfig
from esrgan_plugin.models.loading import load_model
from training.config import TrainConfig
from training.discriminator import VGGStyleDiscriminator
from training.distributed import DistContext
from training.errors import TrainingError
from training.losses import PerceptualLoss

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
    train_g: Any = None
    """What the steps call to run G: its DDP wrapper and/or compiled form (default: G itself)."""
    train_d: Any = None
    """What D's update calls: its DDP wrapper (default: D itself; G's update calls D directly)."""
    channels_last: bool = False

    def __post_init__(self) -> None:
        self.train_g = self.train_g or self.generator

    def exported(self) -> Generator:
        """The generator to publish: the EMA copy when there is one."""
        return self.ema if self.ema is not None else self.generator


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
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop shapes: autotune once
        nets.channels_last = True
        for net in (nets.generator, nets.discriminator, nets.ema):
            if net is not None:
                net.to(memory_format=torch.channels_last)
    return nets


def wrap_for_training(nets: Networks, config: TrainConfig, ctx: DistContext) -> None:
    """DDP wrappers for G and D when there are several ranks; torch.compile of G when asked.

    D's BN layers stay per-rank BatchNorm (no SyncBatchNorm), as in BasicSR and Real-ESRGAN:
    SyncBatchNorm runs only on GPUs, and per-rank statistics are what the authors trained with.
    """
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        nets.train_g = DistributedDataParallel(nets.generator)
        if nets.discriminator is not None:
            nets.train_d = DistributedDataParallel(nets.discriminator)
    if nets.discriminator is not None and nets.train_d is None:
        nets.train_d = nets.discriminator
    if config.compile:
        nets.train_g = torch.compile(nets.train_g)


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
