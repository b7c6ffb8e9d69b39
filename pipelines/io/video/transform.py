"""``transform_video``: a video through a per-frame function into a new video, as a resumable segment job.

Each segment task decodes its frame range (from the keyframe before it), applies ``frame_fn`` to
batches of frames and encodes the results into a segment of its own, the three overlapping
(:mod:`pipelines.io.video.overlap`), so memory is set by the batch size, not by the length of the
segment or the video. Tasks run on the project's executors (threads, worker processes, a
``tcp://`` scheduler); a killed job resumes with the segments it finished; the segments are
joined without re-encoding, with the source's sound, subtitles, chapters and metadata.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from pipelines.io.locks import output_lock
from pipelines.io.video.decode import iter_frames, source_conversion
from pipelines.io.video.errors import VideoError
from pipelines.io.video.index import FrameIndex, index_frames
from pipelines.io.video.monitor import frame_progress
from pipelines.io.video.output import SegmentSink, SegmentWriter, finish_output, plan_output
from pipelines.io.video.overlap import overlapped
from pipelines.io.video.probe import VideoInfo, probe_video
from pipelines.io.video.segments import DEFAULT_SEGMENT_FRAMES, plan_segments
from pipelines.io.video.settings import EncodeSettings, resolve

FrameFn = Callable[[np.ndarray], np.ndarray]
"""``(t, H, W, C) -> (t, round(H * scale), round(W * scale), C)``, same dtype: picklable for processes."""

DEFAULT_BATCH = 8
"""Frames handed to ``frame_fn`` at once."""


@dataclass(frozen=True)
class VideoResult:
    """What a video job did: the output, its frames, those reused from an earlier run, the time taken."""

    path: str
    frames: int
    reused_frames: int
    segments: int
    seconds: float

    def summary(self) -> str:
        """``wrote out.mp4: 120 frames (48 reused from an earlier run) in 12.3 s, 5.84 frames/s``."""
        made = self.frames - self.reused_frames
        rate = made / self.seconds if self.seconds > 0 else 0.0
        reused = f" ({self.reused_frames} reused from an earlier run)" if self.reused_frames else ""
        return (
            f"wrote {self.path}: {self.frames} frames{reused} in {self.seconds:.1f} s, "
            f"{rate:.2f} frames/s"
        )


@dataclass(frozen=True)
class SegmentWork:
    """What every segment task of one job shares (sent with each task: no frame data)."""

    info: VideoInfo
    sink: SegmentSink
    frame_fn: FrameFn
    size: tuple[int, int]
    batch: int


def transform_video(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    frame_fn: FrameFn,
    scale: float = 1.0,
    settings: EncodeSettings | Mapping[str, Any] | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    *,
    executor: Any = "threads",
    progress: TextIO | None = None,
    segment_frames: int = DEFAULT_SEGMENT_FRAMES,
    batch_frames: int = DEFAULT_BATCH,
    overwrite: bool = False,
    restart: bool = False,
    keep_damaged: bool = False,
    size: tuple[int, int] | None = None,
    lock: bool = True,
    tags: Mapping[str, str] | None = None,
) -> VideoResult:
    """Write ``frame_fn`` applied to every frame of ``source`` to ``target``; resumable (see the module docstring).

    ``frame_fn`` gets (t, H, W, C) uint8/uint16 RGB(A) batches (t <= ``batch_frames``) and must
    return (t, round(H * scale), round(W * scale), C) arrays of the same dtype (``size``, an
    (height, width), overrides that prediction when the function rounds otherwise). ``fingerprint``
    holds what decides its output (a model's hash, precision ...): a job folder left by a run
    with another fingerprint is refused unless ``restart``. ``executor`` is an
    :class:`~pipelines.config.schema.ExecutorConfig` or its shorthand (``threads``,
    ``processes``, ``tcp://host:8786``); progress (frames done, frames/s, ETA) and a summary go
    to ``progress``. The output is locked for the job (``.NAME.lock``); a caller that already
    holds that lock (:func:`~pipelines.io.locks.output_lock`) passes ``lock=False``. ``tags``
    are written into the output container's metadata (a provenance record, for example).
    """
    from pipelines.config.schema import ExecutorConfig
    from pipelines.runner.executors import session
    from pipelines.runner.tasks import task

    start_time = time.perf_counter()
    config = _validated(ExecutorConfig, executor, "executor")
    options = _validated(EncodeSettings, settings or {}, "settings")
    info = probe_video(source)
    index = index_frames(info, keep_damaged=keep_damaged)
    size = size or (round(info.height * scale), round(info.width * scale))
    if min(size) < 1:
        raise VideoError(f"{target}: scale {scale:g} makes {info.width}x{info.height} frames empty")
    encoding = resolve(options, target, size[1], size[0], info.bit_depth, info.has_alpha)
    with output_lock(target) if lock else contextlib.nullcontext():
        output, state = plan_output(
            target,
            encoding,
            source_conversion(info),
            index,
            plan_segments(index, segment_frames),
            {
                "caller": dict(fingerprint or {}),
                "source": source_identity(info, index),
                "scale": scale,
            },
            source=info,
            frame_rate=info.frame_rate,
            overwrite=overwrite,
            restart=restart,
            keep_damaged=keep_damaged,
        )
        job = output.job
        if progress is not None:
            progress.write(
                describe_state(
                    job.target, len(job.plan), len(state.done), state.reused_frames, len(index)
                )
                + "\n"
            )
        work = SegmentWork(info, output.sink, frame_fn, size, max(1, batch_frames))
        pending = [k for k in range(len(job.plan)) if k not in state.done]
        tasks = [task(run_segment, work, k, index.window(*job.plan[k])) for k in pending]
        with frame_progress(job, state.reused_frames, progress):
            if tasks:
                try:
                    with session(config, None) as compute:
                        compute(tasks)
                except BaseException:
                    job.cancel()  # segment tasks still running elsewhere stop at their next batch
                    raise
        finish_output(output, tags)
    result = VideoResult(
        str(target),
        len(index),
        state.reused_frames,
        len(job.plan),
        time.perf_counter() - start_time,
    )
    if progress is not None:
        progress.write(result.summary() + "\n")
        progress.flush()
    return result


def _validated(model: Any, value: Any, what: str) -> Any:
    """``value`` as a ``model`` instance; a bad value is a one-line :class:`VideoError`."""
    import pydantic

    from pipelines.config.arguments import describe_error

    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise VideoError(f"{what} {value!r}: {describe_error(exc)}") from None


def source_identity(info: VideoInfo, index: FrameIndex) -> dict[str, Any]:
    """The source's part of a job fingerprint: its path, size and every frame's timestamp."""
    path = Path(info.path)
    return {
        "path": str(path.resolve()),
        "bytes": path.stat().st_size,
        "frames": len(index),
        "timeline": index.digest(),
    }


def describe_state(target: str, segments: int, done: int, reused: int, frames: int) -> str:
    """``out.mp4: resuming: 2 of 5 segments already done (48 of 120 frames reused), 3 to do`` and the like."""
    if done == 0:
        return f"{target}: {segments} segment(s), {frames} frames to do"
    if done == segments:
        return f"{target}: all {segments} segments already done ({reused} frames reused); joining"
    return (
        f"{target}: resuming: {done} of {segments} segments already done "
        f"({reused} of {frames} frames reused), {segments - done} to do"
    )


def run_segment(work: SegmentWork, k: int, window: FrameIndex) -> int:
    """Decode, transform and encode segment ``k`` (one task), the three overlapping; its frame count."""
    start, stop = work.sink.job.plan[k]
    batches = _batches(work.info, window, start - window.first, stop - window.first, work.batch)
    writer = SegmentWriter(work.sink, k)

    def transform(item: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        frames, stamps = item
        return check_frames(work, frames, np.asarray(work.frame_fn(frames))), stamps

    try:
        overlapped(batches, transform, lambda item: writer.write(*item))
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def _batches(
    info: VideoInfo, window: FrameIndex, start: int, stop: int, size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frames, timestamps) batches of at most ``size`` frames from [start, stop) of ``window``."""
    frames: list[np.ndarray] = []
    position = start
    for frame in iter_frames(info, window, start, stop):
        frames.append(frame)
        if len(frames) == size:
            yield np.stack(frames), window.pts[position : position + size]
            position += size
            frames = []
    if frames:
        yield np.stack(frames), window.pts[position : position + len(frames)]


def check_frames(work: SegmentWork, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``after`` if it is what ``frame_fn`` promised for ``before``; a one-line error otherwise."""
    expected = (before.shape[0], *work.size, before.shape[3])
    if after.shape != expected or after.dtype != before.dtype:
        raise VideoError(
            f"{work.info.path}: the frame function returned {after.dtype} {after.shape} for "
            f"{before.dtype} {before.shape}; expected {before.dtype} {expected}"
        )
    return after
