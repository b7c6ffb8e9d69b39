"""One YAML file per experiment, validated into typed objects with line-numbered errors.

The paper's numbers are the defaults (section 4.1); a ``gan`` stage gets the GAN learning
rate and milestones unless the file says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.api import Locations, YamlError, load_yaml
from training.errors import TrainingError

PAPER_PSNR: dict[str, Any] = {"lr": 2e-4, "milestones": [200_000, 400_000, 600_000, 800_000]}
PAPER_GAN: dict[str, Any] = {"lr": 1e-4, "milestones": [50_000, 100_000, 200_000, 300_000]}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(_Strict):
    """The generator to train: RRDBNet (ESRGAN), or SRResNet for the BN-removal ablation."""

    architecture: Literal["rrdbnet", "srresnet"] = Field("rrdbnet", description="generator network")
    batch_norm: bool = Field(
        False, description="SRResNet only: SRGAN's BN layers (the ablation's baseline)"
    )
    scale: Literal[1, 2, 4, 8] = Field(4, description="upscaling factor")
    num_features: int = Field(64, ge=1, description="nf: channels of the trunk")
    num_blocks: int = Field(23, ge=0, description="nb: number of RRDB blocks")
    growth_channels: int = Field(32, ge=1, description="gc: growth channels of the dense blocks")
    in_channels: int = Field(3, ge=1)
    out_channels: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ModelSection:
        if self.architecture == "srresnet" and self.scale == 1:
            raise ValueError("srresnet supports scale 2, 4 or 8")
        if self.batch_norm and self.architecture != "srresnet":
            raise ValueError(
                "batch_norm applies to the srresnet architecture only (RRDBNet has no BN)"
            )
        return self


class SourceSection(_Strict):
    """Where images come from: a folder, a Zarr array/group, or photos shipped in scikit-image."""

    kind: Literal["folder", "zarr", "skimage"] = Field("folder", description="type of source")
    path: str | None = Field(None, description="folder or Zarr path (relative to the config file)")
    lr_path: str | None = Field(None, description="optional folder of paired LR images")
    names: list[str] = Field(default_factory=list, description="skimage.data photo names")

    @model_validator(mode="after")
    def _check(self) -> SourceSection:
        if self.kind in ("folder", "zarr") and not self.path:
            raise ValueError(f"a {self.kind} source needs a path")
        if self.kind == "skimage" and not self.names:
            raise ValueError("a skimage source needs names (e.g. [astronaut, coffee])")
        return self


class DataSection(_Strict):
    """Training crops and the validation set."""

    train: SourceSection
    validation: SourceSection | None = Field(
        None, description="HR images for PSNR/SSIM during training"
    )
    hr_size: int = Field(128, ge=8, description="HR crop side (LR = hr_size / scale)")
    batch_size: int = Field(
        16, ge=1, description="the global batch: split evenly over the ranks of a torchrun job"
    )
    num_workers: int = Field(0, ge=0, description="data loading worker processes (per rank)")


class OptimSection(_Strict):
    """Adam and the step schedule: lr halved (gamma) at each milestone."""

    iterations: int = Field(ge=1, description="total iterations of this stage")
    lr: float | None = Field(None, gt=0, description="default 2e-4 (psnr) or 1e-4 (gan)")
    betas: tuple[float, float] = (0.9, 0.999)
    milestones: list[int] | None = Field(
        None, description="default every 2e5 (psnr) or 50k/100k/200k/300k (gan)"
    )
    gamma: float = Field(0.5, gt=0, le=1)
    discriminator_lr: float | None = Field(None, gt=0, description="default: the generator's lr")
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="EMA of the generator, e.g. 0.999"
    )
    grad_clip: float | None = Field(None, gt=0)


class GanSection(_Strict):
    """Stage 2 losses: L_G = perceptual + gan_weight * RaGAN + pixel_weight * L1."""

    pretrained: str | None = Field(
        None, description="stage 1 generator (.safetensors or experiment folder)"
    )
    perceptual_weight: float = Field(1.0, ge=0)
    gan_weight: float = Field(5e-3, ge=0, description="lambda")
    pixel_weight: float = Field(1e-2, ge=0, description="eta")
    perceptual_layers: dict[str, float] = Field(default_factory=lambda: {"conv5_4": 1.0})
    vgg_weights: str = Field(
        "imagenet", description="imagenet (torchvision cache), random, or a file path"
    )
    discriminator_features: int = Field(64, ge=1)


class TrainConfig(_Strict):
    """A whole experiment."""

    name: str
    stage: Literal["psnr", "gan"]
    output_dir: str = Field(description="experiment folder (checkpoints, logs, exported model)")
    seed: int = 0
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    model: ModelSection = ModelSection()
    data: DataSection
    optim: OptimSection
    gan: GanSection = GanSection()
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(
        1, ge=1, description="also keep the last K checkpoints in checkpoints/ (1: only the newest)"
    )
    snapshot_every: int | None = Field(
        None, ge=1, description="export the generator to snapshots/ every M iterations"
    )
    validate_every: int = Field(500, ge=1)
    validate_niqe: bool = Field(
        False, description="also report NIQE (Y, crop = scale) of the validation outputs"
    )
    log_every: int = Field(
        10, ge=1, description="iterations between log rows (the only device syncs)"
    )
    threads: int | None = Field(
        None, ge=1, description="torch threads per process; default: host cores / local ranks"
    )
    compile: bool = Field(False, description="torch.compile the generator's forward pass")
    base_dir: str = Field(
        ".", description="folder that relative paths are resolved against (set by load_config)"
    )

    @model_validator(mode="after")
    def _stage_defaults(self) -> TrainConfig:
        paper = PAPER_GAN if self.stage == "gan" else PAPER_PSNR
        optim = self.optim.model_copy(
            update={
                "lr": self.optim.lr or paper["lr"],
                "milestones": self.optim.milestones
                if self.optim.milestones is not None
                else list(paper["milestones"]),
            }
        )
        object.__setattr__(self, "optim", optim)
        if self.data.hr_size % self.model.scale:
            raise ValueError(
                f"data.hr_size {self.data.hr_size} is not a multiple of model.scale {self.model.scale}"
            )
        if self.stage == "gan" and self.data.hr_size not in (128, 256):
            raise ValueError(
                "the gan stage's discriminator takes 128 or 256 crops: set data.hr_size to 128 or 256"
            )
        return self

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p


def load_config(
    path: str | os.PathLike[str], overrides: dict[str, object] | None = None
) -> TrainConfig:
    """Parse and validate an experiment file; errors name file:line and the field."""
    try:
        data, where = load_yaml(path)
    except YamlError as exc:
        raise TrainingError(str(exc)) from None
    if not isinstance(data, dict):
        raise TrainingError(f"{path}: expected a mapping of settings at the top level")
    data = {**data, **(overrides or {})}
    data.setdefault("base_dir", str(Path(path).resolve().parent))
    return validate_config(data, where)


def validate_config(data: dict[str, object], where: Locations) -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [
            part
            for part in first["loc"]
            if not isinstance(part, str) or not part.startswith("function-")
        ]
        field = ".".join(_field_name(p) for p in loc) or "(top level)"
        message = " ".join(first["msg"].removeprefix("Value error, ").split())
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TrainingError(f"{where.where(loc)}: field {field}: {message}{more}") from None


def _field_name(part: object) -> str:
    """A key path part as written, quoted when it is empty or not plain printable text."""
    text = str(part)
    return text if text and text.isprintable() and text.strip() == text else repr(text)
