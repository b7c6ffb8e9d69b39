"""Run instrumentation: loss sums and timings over a logging window, reduced with one device
sync per window (never per iteration), and peak memory."""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass, field

import torch

from training.distributed import DistContext, all_reduce_sum


@dataclass(frozen=True)
class WindowSummary:
    """What a logging window measured, the same on every rank."""

    losses: dict[str, float]
    iterations: int
    seconds: float
    data_seconds: float
    stop_requested: bool

    def non_finite(self) -> str | None:
        """The first loss whose window mean is NaN or infinite, if any."""
        return next((k for k, v in self.losses.items() if not math.isfinite(v)), None)

    def figures(self, global_batch: int) -> dict[str, float]:
        """Throughput figures: iterations/s, samples/s (global), the fraction spent waiting for data."""
        seconds = max(self.seconds, 1e-9)
        return {
            "iterations_per_s": self.iterations / seconds,
            "samples_per_s": self.iterations * global_batch / seconds,
            "data_wait": min(1.0, self.data_seconds / seconds),
        }


@dataclass
class Window:
    """Device-side loss sums and host-side timings since the last sync point."""

    device: torch.device
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    iterations: int = 0
    data_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def add(self, losses: dict[str, torch.Tensor], data_seconds: float) -> None:
        """Accumulate one iteration's losses (no sync: the sums stay on the device)."""
        for name, value in losses.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.iterations += 1
        self.data_seconds += data_seconds

    def reduce(self, ctx: DistContext, stop_requested: bool) -> WindowSummary:
        """Means over the window and all ranks, and whether any rank was asked to stop: one sync."""
        names = list(self.sums)
        extras = torch.tensor([float(stop_requested), self.data_seconds], device=self.device)
        sums = [self.sums[n].reshape(1) for n in names]
        packed = torch.cat([*sums, extras])
        values = all_reduce_sum(packed, ctx).cpu().tolist()
        count = max(1, self.iterations) * ctx.world_size
        summary = WindowSummary(
            {n: values[i] / count for i, n in enumerate(names)},
            self.iterations,
            time.perf_counter() - self.started,
            values[-1] / ctx.world_size,
            values[-2] > 0,
        )
        self.sums, self.iterations, self.data_seconds = {}, 0, 0.0
        self.started = time.perf_counter()
        return summary


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: allocated device memory on CUDA, else this process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
