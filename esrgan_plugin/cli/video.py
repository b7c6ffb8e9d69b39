"""Videos for ``esrgan upscale``: every frame through the upscaler, as the host's resumable
segment job (:func:`pipelines.api.transform_video`), with sound, subtitles and timing kept."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from esrgan_plugin.options import UpscaleParams
from pipelines.api import EncodeSettings, VideoError, VideoResult, transform_video

__all__ = ["UpscaleFrames", "VideoError", "add_video_arguments", "upscale_video"]


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """The encoder and job options of video inputs (images ignore them)."""
    group = parser.add_argument_group("videos")
    group.add_argument(
        "--video-codec",
        default=None,
        help="encoder: libx264 (default; libvpx-vp9 for .webm), libx265, libvpx-vp9, ffv1 "
        "(lossless), prores_ks or any other FFmpeg encoder",
    )
    group.add_argument(
        "--crf", type=int, default=None, help="constant quality (default 18 for x264)"
    )
    group.add_argument("--preset", default=None, help="encoder speed preset, e.g. slow, medium")
    group.add_argument("--pix-fmt", default=None, help="pixel format written, e.g. yuv420p10le")
    group.add_argument(
        "--executor",
        default="threads",
        help="where segments run: threads (default), processes or tcp://scheduler:8786",
    )
    group.add_argument(
        "--segment-frames",
        type=int,
        default=None,
        help="frames per segment, the unit of parallel work and of resumption (default: the host's)",
    )
    group.add_argument(
        "--keep-damaged",
        action="store_true",
        help="keep the frames before a decoding error instead of refusing the video",
    )
    group.add_argument(
        "--restart",
        action="store_true",
        help="discard an interrupted job's finished segments instead of resuming it",
    )


@dataclass(frozen=True)
class UpscaleFrames:
    """The frame function of a video job: (t, H, W, C) frames -> the upscaled frames.

    Picklable (parameters only): each process, including Dask workers, loads the model once
    through the per-process upscaler cache.
    """

    params: UpscaleParams

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        from esrgan_plugin.engines.upscalers import device_lock, upscaler_for

        upscaler = upscaler_for(self.params)
        with device_lock(str(upscaler.device)):
            return np.stack([upscaler.upscale(frame) for frame in frames])


def upscale_video(
    source: Any,
    target: Any,
    params: UpscaleParams,
    args: argparse.Namespace,
    step: dict[str, Any],
    record: dict[str, Any] | None,
    scale: float,
    locked: bool,
) -> VideoResult:
    """Upscale one video into ``target``. ``step`` (the stage, its parameters and what they
    resolve to: model SHA-256, engine, precision, halo) decides whether an interrupted job is
    resumed; ``record`` (the provenance, or None) goes into the container's metadata."""
    settings = EncodeSettings(
        codec=args.video_codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt
    )
    fingerprint = {"esrgan.upscale": step}
    return transform_video(
        source,
        target,
        UpscaleFrames(params),
        scale,
        settings,
        fingerprint,
        executor=args.executor,
        progress=sys.stderr,
        overwrite=args.overwrite,
        restart=args.restart,
        keep_damaged=args.keep_damaged,
        lock=not locked,
        **({"segment_frames": args.segment_frames} if args.segment_frames else {}),
        tags={"provenance": json.dumps(record)} if record is not None else None,
    )
