"""torch.distributed for training: ranks from ``torchrun``'s environment, each rank's share of
every global batch, and the few collective operations the loop needs.

``torchrun --nproc_per_node N $(which esrgan) train CONFIG.yaml`` sets RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT; without them (or with WORLD_SIZE 1)
training runs in one process as before. NCCL is used on CUDA devices, gloo on the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from esrgan_plugin.device import resolve_device
from training.errors import TrainingError

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job: global rank, ranks in all, and its rank on its host."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        """Whether there is more than one rank (collectives are needed)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and exported models, and runs validation."""
        return self.rank == 0


def from_environment(environ: Mapping[str, str] | None = None) -> DistContext:
    """The context torchrun's variables describe (a single process when they are absent)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError as exc:
        raise TrainingError(f"torchrun environment: {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise TrainingError(
            f"torchrun environment: RANK {rank} is not in 0..WORLD_SIZE-1 ({world})"
        )
    return DistContext(rank, world, local_rank, max(1, local_world))


def device_for(ctx: DistContext, requested: str) -> torch.device:
    """The device of this rank: its local GPU (``cuda:LOCAL_RANK``) when CUDA is used."""
    device = resolve_device(requested)
    if ctx.enabled and device.type == "cuda" and requested.strip().lower() in ("auto", "cuda"):
        if ctx.local_rank >= torch.cuda.device_count():
            raise TrainingError(
                f"rank {ctx.rank}: LOCAL_RANK {ctx.local_rank} but only "
                f"{torch.cuda.device_count()} CUDA device(s) on this host"
            )
        device = torch.device("cuda", ctx.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def start(ctx: DistContext, device: torch.device) -> bool:
    """Join the process group (NCCL on CUDA, gloo otherwise); True if this call created it."""
    if not ctx.enabled or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world_size)
    return True


def stop(created: bool) -> None:
    """Leave the process group if ``start`` created it."""
    if created and dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, ctx: DistContext) -> int:
    """The per-rank batch size; the global ``batch_size`` must split evenly over the ranks."""
    if batch_size % ctx.world_size:
        raise TrainingError(
            f"data.batch_size {batch_size} (the global batch) does not split evenly over "
            f"{ctx.world_size} ranks; use a multiple of {ctx.world_size}"
        )
    return batch_size // ctx.world_size


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank ``rank``'s contiguous, disjoint share of a global batch (slots in order)."""
    per_rank = len(items) // world_size
    return list(items[rank * per_rank : (rank + 1) * per_rank])


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """``tensor`` summed over all ranks (in place; unchanged in a single process)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if ctx.enabled:
        dist.barrier()


def default_threads(ctx: DistContext) -> int:
    """Torch threads per process: this host's usable cores shared among its ranks."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // ctx.local_world_size)
