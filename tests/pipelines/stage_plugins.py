"""Test stages importable by worker processes and subprocesses: a logging slow copy, a crash-once copy,
a copy that fails after some calls, and nearest-neighbour x2 with a box blur (a scale-changing
stage with a halo)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from pydantic import Field

from pipelines.hooks.markers import hookimpl
from pipelines.runner.registry import StageParams, StageSpec


class SlowParams(StageParams):
    log: str = Field(description="file that gets one line per call")
    seconds: float = Field(0.0, ge=0, description="sleep per call")


class CrashParams(StageParams):
    marker: str = Field(description="file created by the one call that kills its process")
    log: str = Field(description="file that gets one line per call")
    after: int = Field(
        3, ge=0, description="crash on the first call once this many calls were logged (0: never)"
    )


class FailParams(StageParams):
    log: str = Field(description="file that gets one line per call")
    after: int = Field(
        3, ge=0, description="calls that succeed; every later call raises (0: none fails)"
    )


class ZoomParams(StageParams):
    radius: int = Field(1, ge=0, description="box blur radius before the x2 zoom")
    multiple: int = Field(1, ge=1, description="block starts on multiples of this")


def slow_copy(image: np.ndarray, params: SlowParams) -> np.ndarray:
    """The image unchanged, after logging the call and sleeping."""
    with open(params.log, "a", encoding="utf-8") as f:
        f.write(f"{image.shape}\n")
    time.sleep(params.seconds)
    return image


def crash_once(image: np.ndarray, params: CrashParams) -> np.ndarray:
    """The image unchanged; the first call after ``after`` logged calls kills its process (once)."""
    with open(params.log, "a", encoding="utf-8") as f:
        f.write("call\n")
    calls = len(Path(params.log).read_text(encoding="utf-8").splitlines())
    if params.after and calls > params.after:
        try:
            fd = os.open(params.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return image
        os.close(fd)
        os._exit(1)
    return image


def fail_after(image: np.ndarray, params: FailParams) -> np.ndarray:
    """The image unchanged; every call after the first ``after`` raises (a run failing part-way)."""
    with open(params.log, "a", encoding="utf-8") as f:
        f.write("call\n")
    calls = len(Path(params.log).read_text(encoding="utf-8").splitlines())
    if params.after and calls > params.after:
        raise RuntimeError(f"planned failure at call {calls}")
    return image


def box_zoom(image: np.ndarray, params: ZoomParams) -> np.ndarray:
    """Box blur of ``radius`` (zero outside the image), then nearest-neighbour x2; same dtype."""
    r = params.radius
    pixels = image.astype(np.float64)
    padded = np.pad(pixels, [(r, r), (r, r)] + [(0, 0)] * (image.ndim - 2))
    h, w = image.shape[:2]
    total = sum(
        padded[dy : dy + h, dx : dx + w] for dy in range(2 * r + 1) for dx in range(2 * r + 1)
    )
    blurred = np.rint(total / (2 * r + 1) ** 2).astype(image.dtype)
    return blurred.repeat(2, axis=0).repeat(2, axis=1)


@hookimpl
def register_stages() -> list[StageSpec]:
    return [
        StageSpec(
            id="test.slow", description="Copy, logging each call.", params=SlowParams, fn=slow_copy
        ),
        StageSpec(
            id="test.crash_once",
            description="Copy; kills its process once.",
            params=CrashParams,
            fn=crash_once,
        ),
        StageSpec(
            id="test.fail_after",
            description="Copy; fails after some calls.",
            params=FailParams,
            fn=fail_after,
        ),
        StageSpec(
            id="test.zoom",
            description="Box blur then x2.",
            params=ZoomParams,
            fn=box_zoom,
            halo=lambda p: p.radius,
            scale=2.0,
            multiple=lambda p: p.multiple,
        ),
    ]
