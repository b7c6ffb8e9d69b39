"""One video output written by a segment job: planning, writing a segment, joining into place.

Shared by :func:`~pipelines.io.video.transform.transform_video` (segments decoded, transformed and
encoded in one task each) and ``builtin.write`` (segments encoded from the Dask chunks a pipeline
computed). The output is refused if it exists (unless overwriting); its job folder is resumed when
it was made by the same job (see :mod:`pipelines.io.video.job`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.io.video.encode import FrameWriter
from pipelines.io.video.errors import VideoError
from pipelines.io.video.index import FrameIndex
from pipelines.io.video.job import SEGMENT_MUXER, JobState, VideoJob
from pipelines.io.video.join import join_segments
from pipelines.io.video.palette import write_gif
from pipelines.io.video.pixels import Conversion
from pipelines.io.video.probe import VideoInfo
from pipelines.io.video.settings import PALETTE_CONTAINERS, Encoding


@dataclass(frozen=True)
class SegmentSink:
    """What a segment task needs to encode its frames (small: sent with every task)."""

    job: VideoJob
    encoding: Encoding
    conv: Conversion
    time_base: Fraction
    frame_rate: Fraction | None
    sample_aspect_ratio: Fraction | None


@dataclass(frozen=True)
class VideoOutput:
    """A planned video output: its segment sink, and what the join copies from the source."""

    sink: SegmentSink
    timeline: FrameIndex
    source: VideoInfo | None
    rotation: int
    keep_damaged: bool

    @property
    def job(self) -> VideoJob:
        return self.sink.job


def plan_output(
    target: str | os.PathLike[str],
    encoding: Encoding,
    conv: Conversion,
    timeline: FrameIndex,
    plan: Sequence[tuple[int, int]],
    fingerprint: Mapping[str, Any],
    *,
    source: VideoInfo | None = None,
    frame_rate: Fraction | None = None,
    overwrite: bool = False,
    restart: bool = False,
    keep_damaged: bool = False,
) -> tuple[VideoOutput, JobState]:
    """The job for ``target`` and how much of it an earlier run finished (refuses an existing output)."""
    path = Path(target)
    if path.exists() and not overwrite:
        raise VideoError(f"{path}: output exists (set overwrite: true / --overwrite to replace it)")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder; a video output must be a file")
    full = {
        **fingerprint,
        "encoding": encoding.record(),
        "timeline": timeline.digest(),
        "colour": [conv.matrix, conv.range, conv.tags.primaries, conv.tags.transfer],
    }
    job = VideoJob.create(path, plan, full)
    state = job.open(restart)
    sink = SegmentSink(
        job,
        encoding,
        conv,
        timeline.time_base,
        frame_rate,
        source.sample_aspect_ratio if source is not None else None,
    )
    rotation = source.rotation if source is not None else 0
    return VideoOutput(sink, timeline, source, rotation, keep_damaged), state


class SegmentWriter:
    """The encoder of segment ``k``: frames go to a partial file, committed (checksummed) when complete."""

    def __init__(self, sink: SegmentSink, k: int) -> None:
        self.sink, self.k = sink, k
        self.partial = sink.job.partial_path(k, uuid.uuid4().hex[:8])
        self.writer = FrameWriter(
            self.partial,
            sink.encoding,
            sink.conv,
            sink.time_base,
            sink.frame_rate,
            sink.sample_aspect_ratio,
            container_format=SEGMENT_MUXER,
        )

    def write(self, batch: np.ndarray, stamps: Sequence[int] | np.ndarray) -> None:
        """Encode a batch of frames shown at ``stamps``; the count is noted for progress."""
        if self.sink.job.cancelled():
            raise VideoError(f"{self.sink.job.target}: segment {self.k} stopped: the job failed")
        for frame, stamp in zip(batch, stamps, strict=True):
            self.writer.write(frame, int(stamp))
        self.sink.job.report(self.k, self.writer.frames)

    def commit(self) -> int:
        """Finish the file and record it as done; the frames written."""
        job = self.sink.job
        self.writer.close()
        start, stop = job.plan[self.k]
        if self.writer.frames != stop - start:
            raise VideoError(
                f"{job.target}: segment {self.k} got {self.writer.frames} frames, expected {stop - start}"
            )
        job.commit(self.k, self.partial)
        return self.writer.frames

    def abort(self) -> None:
        """Drop the partial file (after an error)."""
        self.writer._abort()
        self.partial.unlink(missing_ok=True)


def write_segment(
    sink: SegmentSink, k: int, frames: Iterable[tuple[np.ndarray, Sequence[int] | np.ndarray]]
) -> int:
    """Encode segment ``k`` from (batch of frames, their timestamps) pairs and commit it; frames written."""
    writer = SegmentWriter(sink, k)
    try:
        for batch, stamps in frames:
            writer.write(batch, stamps)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def finish_output(output: VideoOutput, tags: Mapping[str, str] | None = None) -> str:
    """Join the finished segments with the source's other streams and rename the result into
    place; ``tags`` are added to the container's metadata (e.g. a provenance record)."""
    job = output.job
    encoding = output.sink.encoding
    if encoding.container in PALETTE_CONTAINERS:  # GIF: transcoded, and no room for tags
        write_gif(
            job.joined_path(),
            encoding,
            job.segments(),
            output.timeline,
            output.source,
            output.rotation,
        )
    else:
        join_segments(
            job.joined_path(),
            encoding.container,
            job.segments(),
            output.timeline,
            output.source,
            output.rotation,
            output.keep_damaged,
            tags,
        )
    job.finish()
    return job.target
