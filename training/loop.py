"""The two-stage ESRGAN training loop (paper section 4.1).

Stage ``psnr``: L1 only. Stage ``gan``: starts from a stage-1 generator; the generator minimises
``perceptual + lambda * RaGAN + eta * L1`` and the discriminator the RaGAN loss, updated
alternately (:mod:`training.steps`). Checkpoints (networks, optimisers, EMA, RNG, iteration) are
written atomically; a resumed run draws the same batches and ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from esrgan_plugin.models.loading import save_model
from training.config import TrainConfig
from training.distributed import (
    DistContext,
    barrier,
    check_batch,
    default_threads,
    device_for,
    from_environment,
)
from training.distributed import start as start_distributed
from training.distributed import stop as stop_distributed
from training.errors import TrainingError
from training.instruments import Window, peak_memory_mb
from training.interrupt import stop_on_signals
from training.logs import MetricsLog
from training.networks import GENERATOR_NAME, Networks, build_networks, wrap_for_training
from training.state import (
    CHECKPOINT_NAME,
    keep_checkpoint,
    load_checkpoint,
    lr_at,
    save_checkpoint,
    snapshot_path,
)
from training.steps import gan_step, psnr_step, update_ema
from training.validation import Validator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where the generator went, the iteration reached, the last figures; why it stopped early."""

    generator_path: Path
    iteration: int
    last_losses: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    interrupted_by: str | None = None


def training_state(nets: Networks, iteration: int, world_size: int = 1) -> dict[str, Any]:
    """Everything a resumed run needs (tensors and plain containers), and the world size."""
    state: dict[str, Any] = {
        "iteration": iteration,
        "world_size": world_size,
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


def export_generator(
    nets: Networks,
    run_dir: Path,
    config: TrainConfig,
    iteration: int,
    world_size: int = 1,
    path: Path | None = None,
) -> Path:
    """The generator (EMA if enabled) as canonical safetensors, loadable by ``esrgan upscale``."""
    metadata: dict[str, object] = {
        "name": config.name,
        "stage": config.stage,
        "iteration": iteration,
        "ema": nets.ema is not None,
        "seed": config.seed,
        "world_size": world_size,
        "batch_size": config.data.batch_size,
    }
    if nets.perceptual is not None:
        metadata["vgg_weights"] = nets.perceptual.weights_source
        metadata["losses"] = (
            f"{config.gan.perceptual_weight}*perceptual{sorted(config.gan.perceptual_layers)} + "
            f"{config.gan.gan_weight}*RaGAN + {config.gan.pixel_weight}*L1"
        )
    else:
        metadata["losses"] = "L1"
    target = path or run_dir / GENERATOR_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    return save_model(target, nets.exported(), metadata)


# --------------------------------------------------------------------------- the run


@dataclass
class _Run:
    """The state of one run that the per-iteration helpers share."""

    config: TrainConfig
    ctx: DistContext
    device: torch.device
    run_dir: Path
    nets: Networks
    metrics: MetricsLog | None
    validator: Validator | None
    losses: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    window_start: int = 0

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME


def train(
    config: TrainConfig, resume: bool = False, stop_at: int | None = None, progress: bool = True
) -> TrainResult:
    """Run (or resume) an experiment; ``stop_at`` ends early, as an interruption would.

    Under ``torchrun`` every rank calls this; rank 0 alone writes files and validates.
    """
    ctx = from_environment()
    device = device_for(ctx, config.device)
    created = start_distributed(ctx, device)
    try:
        return _train(config, ctx, device, resume, stop_at, progress)
    finally:
        stop_distributed(created)


def _train(
    config: TrainConfig,
    ctx: DistContext,
    device: torch.device,
    resume: bool,
    stop_at: int | None,
    progress: bool,
) -> TrainResult:
    from training.data import make_training_batches

    check_batch(config.data.batch_size, ctx)
    torch.set_num_threads(config.threads or default_threads(ctx))
    run_dir = config.resolve(config.output_dir)
    if (run_dir / CHECKPOINT_NAME).exists() and not resume:
        raise TrainingError(
            f"{run_dir}: experiment already has a checkpoint; pass --resume to continue it or choose a new output_dir"
        )
    barrier(ctx)  # every rank has checked before rank 0 writes anything
    nets = build_networks(config, device)
    start = restore_state(nets, load_checkpoint(run_dir / CHECKPOINT_NAME)) if resume else 0
    wrap_for_training(nets, config, ctx)
    end = config.optim.iterations if stop_at is None else min(stop_at, config.optim.iterations)
    if start >= config.optim.iterations and ctx.is_main:
        log.warning("%s: already trained for %d iterations", run_dir, start)
    run = _Run(
        config,
        ctx,
        device,
        run_dir,
        nets,
        MetricsLog(run_dir, resume_from=start) if ctx.is_main else None,
        Validator.from_config(config, device) if ctx.is_main else None,
        window_start=start,
    )
    step = gan_step if config.stage == "gan" else psnr_step
    batches = make_training_batches(config, start, ctx.rank, ctx.world_size)
    bar = _progress_bar(start, config.optim.iterations, enabled=progress and ctx.is_main)
    window = Window(device)
    reached, stopped_by = start, None
    try:
        with stop_on_signals() as stop:
            for iteration in range(start + 1, end + 1):
                waited = time.perf_counter()
                batch = next(batches)
                lr_img, hr_img = _to_device(batch, device, nets.channels_last)
                _set_learning_rates(nets, config, iteration - 1)
                window.add(step(nets, lr_img, hr_img, config, device), time.perf_counter() - waited)
                if nets.ema is not None:
                    update_ema(nets.ema, nets.generator, config.optim.ema_decay or 0.0)
                reached = iteration
                if _after_iteration(run, window, iteration, end, bool(stop)):
                    stopped_by = stop.signal.name if stop.signal else "a signal on another rank"
                    break
                bar.update(1)
                if iteration % config.log_every == 0:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in run.losses.items()})
    finally:
        bar.close()
        if run.metrics is not None:
            run.metrics.close()
    barrier(ctx)  # rank 0's files are complete when any rank returns
    return TrainResult(
        run_dir / GENERATOR_NAME, max(reached, start), run.losses, run.scores, stopped_by
    )


def _to_device(
    batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return tuple(  # type: ignore[return-value]
        batch[k].to(device, non_blocking=True).contiguous(memory_format=fmt) for k in ("lr", "hr")
    )


def _after_iteration(
    run: _Run, window: Window, iteration: int, end: int, stop_requested: bool
) -> bool:
    """Log, validate, checkpoint and snapshot where due; True when the run must stop now.

    Losses are reduced (one device sync, across ranks too) only at log, validation, checkpoint
    and snapshot iterations, at the end, and, in a single process, when a signal arrived; a
    non-finite mean stops the run before anything is written.
    """
    config, ctx = run.config, run.ctx
    due_validation = iteration % config.validate_every == 0 or iteration == end
    due_checkpoint = iteration % config.checkpoint_every == 0 or iteration == end
    due_snapshot = config.snapshot_every is not None and iteration % config.snapshot_every == 0
    due_log = iteration % config.log_every == 0
    local_stop = stop_requested and not ctx.enabled
    if not (due_log or due_validation or due_checkpoint or due_snapshot or local_stop):
        return False
    summary = window.reduce(ctx, stop_requested)
    bad = summary.non_finite()
    if bad is not None:
        span = (
            f"at iteration {iteration}"
            if iteration == run.window_start + 1
            else f"in iterations {run.window_start + 1}-{iteration}"
        )
        raise TrainingError(
            f"non-finite loss {bad}={summary.losses[bad]} {span}; stopped, the last good "
            f"checkpoint {run.checkpoint} is kept (lower optim.lr or set optim.grad_clip)"
        )
    run.window_start = iteration
    run.losses = summary.losses
    stopping = summary.stop_requested
    if ctx.is_main:
        row: dict[str, float] = {}
        if due_validation and run.validator:
            run.scores = run.validator.evaluate(run.nets.exported())
            row.update(run.scores)
        row.update(summary.losses)
        row["lr"] = run.nets.optimizer_g.param_groups[0]["lr"]
        if run.nets.optimizer_d is not None:
            row["lr_d"] = run.nets.optimizer_d.param_groups[0]["lr"]
        row.update(summary.figures(config.data.batch_size))
        row["peak_memory_mb"] = peak_memory_mb(run.device)
        row["world_size"] = ctx.world_size
        assert run.metrics is not None
        run.metrics.write(iteration, row)
        if due_checkpoint or stopping:
            save_checkpoint(run.checkpoint, training_state(run.nets, iteration, ctx.world_size))
            keep_checkpoint(run.run_dir, iteration, config.keep_checkpoints)
            export_generator(run.nets, run.run_dir, config, iteration, ctx.world_size)
        if due_snapshot:
            path = snapshot_path(run.run_dir, iteration)
            export_generator(run.nets, run.run_dir, config, iteration, ctx.world_size, path)
    return stopping


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
